//go:build !unix

package testenv

import "errors"

type stopSignal int

const (
	sigStop stopSignal = iota
	sigCont
)

func signalProcess(int, stopSignal) error {
	return errors.New("pausing a process needs SIGSTOP (unix only)")
}
