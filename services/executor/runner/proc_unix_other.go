//go:build unix && !linux

package runner

import "syscall"

// Only Linux has a parent-death signal.
func setDeathSignal(*syscall.SysProcAttr) {}
