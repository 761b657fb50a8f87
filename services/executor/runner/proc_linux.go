//go:build linux

package runner

import "syscall"

// setDeathSignal has the kernel kill a block's process when the executor that started it
// dies, so that a killed executor's blocks do not keep running beside the copies another
// executor starts when their work is redelivered. It reaches the direct child only; children
// it left in the background of its process group are not covered.
func setDeathSignal(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }
