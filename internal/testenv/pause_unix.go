//go:build unix

package testenv

import "syscall"

type stopSignal = syscall.Signal

const (
	sigStop = syscall.SIGSTOP
	sigCont = syscall.SIGCONT
)

// signalProcess sends sig to pid alone (not its process group).
func signalProcess(pid int, sig stopSignal) error {
	return syscall.Kill(pid, sig)
}
