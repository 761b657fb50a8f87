package main

import (
	"fmt"
	"syscall"
)

// childAttrs makes the kernel kill the runyard subprocess if this tool dies without stopping
// it (killed with SIGKILL, crashed), so no server outlives a benchmark.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// raiseFDLimit raises this process's soft limit on open files to the hard limit and returns
// it. Setting it here, rather than relying on the Go runtime's own raise, also makes the
// runyard subprocess inherit the raised limit.
func raiseFDLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read the open-file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("raise the open-file limit to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}
