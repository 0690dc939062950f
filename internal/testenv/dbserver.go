package testenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DBKind names a database server implementation.
type DBKind string

const (
	// DBPostgres is PostgreSQL.
	DBPostgres DBKind = "postgres"
	// DBMariaDB is MariaDB.
	DBMariaDB DBKind = "mariadb"
)

// Timeouts of a private database server.
const (
	dbInitTimeout  = 2 * time.Minute  // initdb / mariadb-install-db
	dbReadyTimeout = time.Minute      // until it accepts a query
	dbStopTimeout  = 30 * time.Second // clean shutdown before SIGKILL
)

// DBServer is a private database server: its own data directory in a
// temporary directory and its own port on 127.0.0.1, so that a test may
// restart or crash it without disturbing other tests, which share the
// machine's servers on ports 5432 and 3306. Authentication is off (trust /
// passwordless root), and nothing listens beyond 127.0.0.1.
//
// When the tests run as root the server runs as the postgres or mysql OS
// user (PostgreSQL refuses to run as root): the directory is handed to that
// user and the process is started with its credentials.
type DBServer struct {
	// Kind is the implementation.
	Kind DBKind
	// URL is a superuser URL, without a password, of a database that
	// exists: postgres://postgres@127.0.0.1:PORT/postgres or
	// mysql://root@tcp(127.0.0.1:PORT)/mysql. CreateDatabase and
	// NewDatabase make fresh databases from it.
	URL string
	// Port is the TCP port on 127.0.0.1. It stays the same across
	// restarts.
	Port int
	// Dir holds the data directory, the Unix socket and LogPath.
	Dir string
	// LogPath is the file the server's output is appended to.
	LogPath string

	bin     string
	args    []string
	stopSig os.Signal // clean, fast shutdown
	attr    func() *syscall.SysProcAttr
	log     *slog.Logger

	mu   sync.Mutex
	proc *process
}

// StartPrivatePostgres initializes and starts a private PostgreSQL server
// (see DBServer) for the test, stops it and removes its directory with
// t.Cleanup (after a failing test the directory is kept and the tail of
// the log printed). Missing server binaries (initdb, postgres; looked up in
// $PATH and /usr/lib/postgresql/*/bin) fail the test with what to install.
func StartPrivatePostgres(t testing.TB) *DBServer {
	t.Helper()
	return startPrivate(t, DBPostgres)
}

// StartPrivateMariaDB is StartPrivatePostgres for MariaDB
// (mariadb-install-db and mariadbd, from $PATH, /usr/sbin or /usr/bin).
func StartPrivateMariaDB(t testing.TB) *DBServer {
	t.Helper()
	return startPrivate(t, DBMariaDB)
}

func startPrivate(t testing.TB, kind DBKind) *DBServer {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	s, err := NewPrivateDB(t.Context(), kind, log)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Logf("testenv: stopping %s: %v", kind, err)
		}
		if t.Failed() {
			t.Logf("testenv: ---- last lines of %s ----\n%s", s.LogPath, tailFile(s.LogPath, 40))
			t.Logf("testenv: %s data kept in %s", kind, s.Dir)
			return
		}
		_ = os.RemoveAll(s.Dir)
	})
	return s
}

// NewPrivateDB initializes a private server of kind in a new temporary
// directory and starts it. The caller stops it with Stop and removes Dir.
// On error nothing is left running; the directory is removed unless the
// server's log has something to read.
func NewPrivateDB(ctx context.Context, kind DBKind, log *slog.Logger) (_ *DBServer, err error) {
	if log == nil {
		log = slog.Default()
	}
	var bins map[string]string
	switch kind {
	case DBPostgres:
		bins, err = postgresBinaries()
	case DBMariaDB:
		bins, err = mariadbBinaries()
	default:
		return nil, fmt.Errorf("unknown database server kind %q", kind)
	}
	if err != nil {
		return nil, err
	}
	osUser := map[DBKind]string{DBPostgres: "postgres", DBMariaDB: "mysql"}[kind]
	attr, uid, gid, err := serviceUser(osUser)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "keelson-"+string(kind)+"-")
	if err != nil {
		return nil, fmt.Errorf("creating %s directory: %w", kind, err)
	}
	s := &DBServer{
		Kind:    kind,
		Dir:     dir,
		LogPath: filepath.Join(dir, string(kind)+".log"),
		attr:    func() *syscall.SysProcAttr { a := *attr; return &a },
		log:     log,
	}
	defer func() {
		if err != nil {
			_ = s.Stop()
			if _, statErr := os.Stat(s.LogPath); statErr != nil {
				_ = os.RemoveAll(dir)
			} else {
				err = fmt.Errorf("%w (log and data kept in %s)", err, dir)
			}
		}
	}()
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, fmt.Errorf("handing %s to user %s: %w", dir, osUser, err)
		}
	}
	dataDir := filepath.Join(dir, "data")
	ictx, cancel := context.WithTimeout(ctx, dbInitTimeout)
	defer cancel()
	switch kind {
	case DBPostgres:
		err = s.runInit(ictx, bins["initdb"], "-D", dataDir, "-U", "postgres", "-A", "trust",
			"-E", "UTF8", "--locale=C", "--no-sync")
	case DBMariaDB:
		err = s.runInit(ictx, bins["install"], "--no-defaults", "--datadir="+dataDir,
			"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve")
	}
	if err != nil {
		return nil, err
	}
	err = startRetrying(log, string(kind), func() error {
		ports, err := freePorts(1)
		if err != nil {
			return err
		}
		s.Port = ports[0]
		port := strconv.Itoa(s.Port)
		switch kind {
		case DBPostgres:
			s.bin = bins["postgres"]
			s.args = []string{"-D", dataDir, "-p", port, "-k", dir,
				"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
				"-c", "shared_buffers=32MB", "-c", "logging_collector=off"}
			s.stopSig = os.Interrupt // fast shutdown: ends sessions, checkpoints
			s.URL = "postgres://postgres@127.0.0.1:" + port + "/postgres?sslmode=disable"
		case DBMariaDB:
			s.bin = bins["mariadbd"]
			s.args = []string{"--no-defaults", "--datadir=" + dataDir, "--port=" + port,
				"--bind-address=127.0.0.1", "--socket=" + filepath.Join(dir, "mysqld.sock"),
				"--pid-file=" + filepath.Join(dir, "mysqld.pid"), "--tmpdir=" + dir,
				"--skip-name-resolve", "--max-connections=300", "--innodb-buffer-pool-size=64M"}
			s.stopSig = syscall.SIGTERM // clean shutdown
			s.URL = "mysql://root@tcp(127.0.0.1:" + port + ")/mysql"
		}
		return s.Start(ctx)
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// runInit runs the data directory initializer, appending its output to the
// log.
func (s *DBServer) runInit(ctx context.Context, bin string, args ...string) error {
	f, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s log: %w", s.Kind, err)
	}
	defer f.Close()
	fmt.Fprintf(f, "=== testenv: %s %v\n", bin, args)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = s.Dir
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = s.attr()
	started := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initializing %s data directory with %s: %w; log %s:\n%s", s.Kind, filepath.Base(bin), err, s.LogPath, tailFile(s.LogPath, 20))
	}
	s.log.Info("database initialized", "kind", s.Kind, "dir", s.Dir, "took", time.Since(started).Round(time.Millisecond))
	return nil
}

// Start starts the server on its data directory and port and waits until
// it answers a query. It fails if the server is running.
func (s *DBServer) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.exited() {
		return fmt.Errorf("%s is already running", s.Kind)
	}
	f, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s log: %w", s.Kind, err)
	}
	started := time.Now()
	p, err := startCommand(string(s.Kind), s.bin, s.args, s.LogPath, nil, func(cmd *exec.Cmd) {
		cmd.Dir = s.Dir
		cmd.SysProcAttr = s.attr()
	}, f)
	if err != nil {
		return err
	}
	s.proc = p
	rctx, cancel := context.WithTimeout(ctx, dbReadyTimeout)
	defer cancel()
	if err := p.waitFor(rctx, string(s.Kind)+" to answer a query", 50*time.Millisecond, s.ping); err != nil {
		p.kill()
		if p.addrInUse() {
			return fmt.Errorf("%s: %w: %w", s.Kind, errAddrInUse, err)
		}
		return fmt.Errorf("%s: %w", s.Kind, err)
	}
	s.log.Info("database server ready", "kind", s.Kind, "port", s.Port, "pid", p.cmd.Process.Pid,
		"took", time.Since(started).Round(time.Millisecond), "log", s.LogPath)
	return nil
}

// ping connects and runs SELECT 1.
func (s *DBServer) ping(ctx context.Context) error {
	switch s.Kind {
	case DBPostgres:
		c, err := pgx.Connect(ctx, s.URL)
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		_, err = c.Exec(ctx, "SELECT 1")
		return err
	default:
		db, err := mysqlDB(s.URL)
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.ExecContext(ctx, "SELECT 1")
		return err
	}
}

// Stop shuts the server down cleanly (PostgreSQL: fast shutdown, which
// ends open sessions; MariaDB: SIGTERM), killing it if it does not exit in
// time. Stop on a stopped server does nothing.
func (s *DBServer) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	started := time.Now()
	err := s.proc.stopWith(s.stopSig, dbStopTimeout)
	s.log.Info("database server stopped", "kind", s.Kind, "port", s.Port, "took", time.Since(started).Round(time.Millisecond))
	return err
}

// Kill kills the server and its processes with SIGKILL (a crash) and waits
// for it to exit; the next Start recovers from its log.
func (s *DBServer) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
		s.log.Info("database server killed", "kind", s.Kind, "port", s.Port, "signal", "SIGKILL")
	}
}

// Restart stops the server cleanly and starts it again on the same data
// and port: every client connection breaks.
func (s *DBServer) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start(ctx)
}

// Running reports whether the server process is running.
func (s *DBServer) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.exited()
}

// postgresBinaries finds initdb and postgres: in $PATH, else in the newest
// /usr/lib/postgresql/VERSION/bin.
func postgresBinaries() (map[string]string, error) {
	dirs := []string{""}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(found, func(i, j int) bool { return pgVersion(found[i]) > pgVersion(found[j]) })
	dirs = append(dirs, found...)
	for _, d := range dirs {
		bins := map[string]string{}
		for _, name := range []string{"initdb", "postgres"} {
			if p, err := lookIn(d, name); err == nil {
				bins[name] = p
			}
		}
		if len(bins) == 2 {
			return bins, nil
		}
	}
	return nil, errors.New("postgresql server binaries (initdb, postgres) not found in $PATH or /usr/lib/postgresql/*/bin: install the PostgreSQL server (e.g. apt-get install postgresql)")
}

// pgVersion is the major version in /usr/lib/postgresql/VERSION/bin.
func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// mariadbBinaries finds mariadbd and mariadb-install-db.
func mariadbBinaries() (map[string]string, error) {
	bins := map[string]string{}
	for key, names := range map[string][]string{
		"mariadbd": {"mariadbd", "mysqld"},
		"install":  {"mariadb-install-db", "mysql_install_db"},
	} {
		for _, name := range names {
			for _, d := range []string{"", "/usr/sbin", "/usr/bin", "/usr/libexec"} {
				if p, err := lookIn(d, name); err == nil && bins[key] == "" {
					bins[key] = p
				}
			}
		}
	}
	if len(bins) != 2 {
		return nil, errors.New("mariadb server binaries (mariadbd, mariadb-install-db) not found in $PATH, /usr/sbin or /usr/bin: install the MariaDB server (e.g. apt-get install mariadb-server)")
	}
	return bins, nil
}

// lookIn finds an executable name in dir, or in $PATH if dir is empty.
func lookIn(dir, name string) (string, error) {
	if dir == "" {
		return exec.LookPath(name)
	}
	p := filepath.Join(dir, name)
	st, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not executable", p)
	}
	return p, nil
}
