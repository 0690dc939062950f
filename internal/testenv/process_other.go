//go:build unix && !linux

package testenv

import "syscall"

// sysProcAttr puts the child in its own process group.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// descendants is not implemented here: killing the group is all we do.
func descendants(int) []int { return nil }

// anyAlive reports whether a process of the process group pgid, or one of
// pids, still exists.
func anyAlive(pgid int, pids []int) bool {
	if syscall.Kill(-pgid, 0) == nil {
		return true
	}
	for _, p := range pids {
		if syscall.Kill(p, 0) == nil {
			return true
		}
	}
	return false
}
