package testenv

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr puts the child in its own process group and kills it if this
// process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// procEntry is a line of /proc/PID/stat, in part.
type procEntry struct {
	pid, ppid, pgrp int
	zombie          bool
}

// procTable lists the processes in /proc.
func procTable() []procEntry {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procEntry
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp …; comm may contain spaces and ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgrp, _ := strconv.Atoi(f[2])
		out = append(out, procEntry{pid: pid, ppid: ppid, pgrp: pgrp, zombie: f[0] == "Z"})
	}
	return out
}

// descendants returns the processes below pid (children that left its
// process group, such as PostgreSQL's backends, included).
func descendants(pid int) []int {
	children := map[int][]int{}
	for _, p := range procTable() {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		c := children[queue[0]]
		queue = queue[1:]
		out = append(out, c...)
		queue = append(queue, c...)
	}
	return out
}

// anyAlive reports whether a process of the process group pgid, or one of
// pids, is still running (zombies, which hold no resources, do not count).
func anyAlive(pgid int, pids []int) bool {
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	for _, p := range procTable() {
		if !p.zombie && (p.pgrp == pgid || want[p.pid]) {
			return true
		}
	}
	return false
}
