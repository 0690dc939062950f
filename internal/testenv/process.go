package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend/sqlcommon"
)

// stopTimeout is how long a component gets to exit after SIGTERM before its
// process group is killed.
const stopTimeout = 15 * time.Second

// process is one running component: a command in its own process group
// whose output is appended to a log file.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	err     error         // exit status, valid once done is closed
	// expected is set before we signal the process, so that its exit is
	// not reported as a failure.
	expected atomic.Bool
}

// startProcess starts bin with args, appending its output to logPath. onExit,
// if not nil, is called (from another goroutine) when the process exits
// without having been stopped through the process.
func startProcess(name, bin string, args []string, logPath string, onExit func(p *process)) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s log: %w", name, err)
	}
	return startCommand(name, bin, args, logPath, onExit, func(cmd *exec.Cmd) { cmd.SysProcAttr = sysProcAttr() }, f)
}

// startCommand is startProcess with a hook that adjusts the command (process
// attributes, working directory) before it starts; it owns f.
func startCommand(name, bin string, args []string, logPath string, onExit func(p *process), adjust func(*exec.Cmd), f *os.File) (*process, error) {
	fmt.Fprintf(f, "=== testenv: %s starting at %s: %s %s\n", name, time.Now().Format(time.RFC3339Nano), bin, strings.Join(redactArgs(args), " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	adjust(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		fmt.Fprintf(f, "=== testenv: %s exited at %s: %v\n", name, time.Now().Format(time.RFC3339Nano), exitString(p.err))
		f.Close()
		close(p.done)
		if onExit != nil && !p.expected.Load() {
			onExit(p)
		}
	}()
	return p, nil
}

// redactArgs hides passwords in database URLs (--backend=…) so that the
// command line can be written to a log.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--backend="); ok && v != "" {
			a = "--backend=" + sqlcommon.RedactURL(v)
		}
		out[i] = a
	}
	return out
}

func exitString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// groupExitTimeout bounds the wait for the rest of a killed process tree
// (a database server's children) after its leader exited.
const groupExitTimeout = 10 * time.Second

// kill sends SIGKILL to the process group and to every descendant (some
// leave the group: PostgreSQL's backends start their own sessions), then
// waits until all of them are gone: a database server's children hold its
// shared memory, and a new server on the same data refuses to start while
// they live.
func (p *process) kill() {
	p.expected.Store(true)
	if p.exited() {
		return
	}
	pid := p.cmd.Process.Pid
	tree := descendants(pid)
	_ = killGroup(pid, true)
	killAll(tree)
	<-p.done
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(groupExitTimeout)
	// SIGKILL cannot be caught: wait, without signalling pids again (one
	// could be reused once its process is gone).
	for anyAlive(pid, tree) {
		select {
		case <-tick.C:
		case <-deadline:
			return
		}
	}
}

// killAll sends SIGKILL to each of pids.
func killAll(pids []int) {
	for _, pid := range pids {
		if pr, err := os.FindProcess(pid); err == nil {
			_ = pr.Kill()
		}
	}
}

// stop sends SIGTERM to the process group, waits up to timeout, then kills
// the group. It returns an error if the process had to be killed.
func (p *process) stop(timeout time.Duration) error {
	p.expected.Store(true)
	if p.exited() {
		return nil
	}
	_ = killGroup(p.cmd.Process.Pid, false)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		_ = killGroup(p.cmd.Process.Pid, true)
		<-p.done
		return fmt.Errorf("%s did not exit within %s of SIGTERM; killed", p.name, timeout)
	}
}

// stopWith sends sig to the process itself (not its group), waits up to
// timeout, then kills the group. Database servers choose their shutdown
// mode by signal (PostgreSQL: SIGINT is a fast shutdown, SIGTERM waits for
// clients to disconnect).
func (p *process) stopWith(sig os.Signal, timeout time.Duration) error {
	p.expected.Store(true)
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		_ = killGroup(p.cmd.Process.Pid, true)
		<-p.done
		return fmt.Errorf("%s did not exit within %s of %v; killed", p.name, timeout, sig)
	}
}

// exitError describes an early exit, with the tail of the log.
func (p *process) exitError() error {
	return fmt.Errorf("%s exited: %s (log %s):\n%s", p.name, exitString(p.err), p.logPath, tailFile(p.logPath, 30))
}

// waitFor polls check every interval until it returns nil, the context ends
// or the process exits. interval is a polling period, not a synchronization.
func (p *process) waitFor(ctx context.Context, what string, interval time.Duration, check func(ctx context.Context) error) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last error: %v; log %s)", what, ctx.Err(), last, p.logPath)
		case <-p.done:
			return fmt.Errorf("waiting for %s: %w", what, p.exitError())
		case <-tick.C:
		}
	}
}

// addrInUse reports whether the log of a process that failed to start says
// a port was taken (someone else got the free port first).
func (p *process) addrInUse() bool {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return false
	}
	return bytes.Contains(b, []byte("address already in use"))
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer f.Close()
	// Read at most the last 256 KiB.
	const max = 256 << 10
	if st, err := f.Stat(); err == nil && st.Size() > max {
		if _, err := f.Seek(st.Size()-max, io.SeekStart); err != nil {
			return fmt.Sprintf("(cannot read log: %v)", err)
		}
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// errAddrInUse marks a start that failed because a port was taken.
var errAddrInUse = errors.New("address already in use")

// startRetrying runs start up to three times while it fails with
// errAddrInUse (the free port was taken between picking and binding).
func startRetrying(log *slog.Logger, what string, start func() error) error {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		err = start()
		if !errors.Is(err, errAddrInUse) {
			return err
		}
		log.Warn("port taken, retrying with new ports", "component", what, "attempt", attempt)
	}
	return err
}
