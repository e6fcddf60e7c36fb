package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the child when the soak dies, however it dies, so that no
// churnd or redis-server outlives an interrupted run.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
