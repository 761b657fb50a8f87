//go:build !linux

package main

import "syscall"

// childAttrs has no parent-death signal outside Linux; the tool stops its subprocess itself.
func childAttrs() *syscall.SysProcAttr { return nil }

// raiseFDLimit leaves the open-file limit as it is outside Linux; 0 means unknown.
func raiseFDLimit() (uint64, error) { return 0, nil }
