package testenv

// Pid is the process id of the kube-apiserver, 0 when it is not running
// (benchmarks read its CPU time from /proc).
func (a *APIServer) Pid() int {
	if a.proc == nil || a.proc.exited() {
		return 0
	}
	return a.proc.cmd.Process.Pid
}

// Pid is the process id of the store, 0 when it is not running.
func (s *Store) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.exited() {
		return 0
	}
	return s.proc.cmd.Process.Pid
}
