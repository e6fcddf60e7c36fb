//go:build !linux

package main

import "os/exec"

// dieWithParent does nothing here: only Linux kills a child with its parent. (The soak reads
// /proc, so it runs on Linux anyway; this file keeps the module building elsewhere.)
func dieWithParent(*exec.Cmd) {}
