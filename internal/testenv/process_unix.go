//go:build unix

package testenv

import "syscall"

// killGroup signals the process group led by pid: SIGKILL if hard, else
// SIGTERM.
func killGroup(pid int, hard bool) error {
	sig := syscall.SIGTERM
	if hard {
		sig = syscall.SIGKILL
	}
	return syscall.Kill(-pid, sig)
}
