package testenv

import (
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// killGroup kills the process (Windows has no process groups to signal).
func killGroup(pid int, _ bool) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// descendants is not implemented on Windows.
func descendants(int) []int { return nil }

// anyAlive reports false: there are no process groups to wait for.
func anyAlive(int, []int) bool { return false }
