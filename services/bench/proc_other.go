//go:build !linux

package main

import "syscall"

// childAttrs has no parent-death signal outside Linux; the tool stops its subprocess itself.
func childAttrs() *syscall.SysProcAttr { return nil }
