package testenv

import (
	"errors"
	"fmt"
)

// errNotRunning is returned when a component to signal is not running.
var errNotRunning = errors.New("not running")

// Pause stops the kube-apiserver process with SIGSTOP: its port stays
// open and connections hang, which is what an unreachable member looks
// like to its clients. Resume continues it.
func (a *APIServer) Pause() error {
	if err := a.signal(sigStop); err != nil {
		return fmt.Errorf("pausing %s: %w", a.URL, err)
	}
	return nil
}

// Resume continues a paused kube-apiserver with SIGCONT.
func (a *APIServer) Resume() error {
	if err := a.signal(sigCont); err != nil {
		return fmt.Errorf("resuming %s: %w", a.URL, err)
	}
	return nil
}

func (a *APIServer) signal(sig stopSignal) error {
	if a.proc == nil || a.proc.exited() {
		return errNotRunning
	}
	return signalProcess(a.proc.cmd.Process.Pid, sig)
}
