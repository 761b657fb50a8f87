package main

import "syscall"

// childAttrs makes the kernel kill the runyard subprocess if this tool dies without stopping
// it (killed with SIGKILL, crashed), so no server outlives a benchmark.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
