package ha

import (
	"context"
	"testing"
	"time"

	"github.com/keelson-dev/keelson/internal/testenv"
)

const (
	replicas = 2
	writers  = 8
	// loadPuts is how many puts are acknowledged before and after each
	// fault.
	loadPuts = 300
)

// database is a server the store instances share in a test.
type database struct {
	name string
	// base returns the server's URL for the test (shared, or a private
	// server started for it) and, for a private server, the server.
	base func(t *testing.T) (string, *testenv.DBServer)
}

func sharedPostgres(*testing.T) (string, *testenv.DBServer) { return testenv.PostgresURL(), nil }
func sharedMariaDB(*testing.T) (string, *testenv.DBServer)  { return testenv.MySQLURL(), nil }

func privatePostgres(t *testing.T) (string, *testenv.DBServer) {
	s := testenv.StartPrivatePostgres(t)
	return s.URL, s
}

func privateMariaDB(t *testing.T) (string, *testenv.DBServer) {
	s := testenv.StartPrivateMariaDB(t)
	return s.URL, s
}

// startStores starts replicas store instances on a fresh database of base.
func startStores(t *testing.T, base string) *testenv.Env {
	t.Helper()
	return testenv.Start(t, testenv.Options{
		Backend:       testenv.NewDatabase(t, base, "keelson_ha"),
		StoreReplicas: replicas,
		StoreOnly:     true,
	})
}

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts database servers and store processes; skipped with -short")
	}
}

// TestStoreKillUnderLoad kills one of two store instances with SIGKILL while
// clients write through both, then restarts it.
func TestStoreKillUnderLoad(t *testing.T) {
	skipShort(t)
	for _, db := range []database{{"postgres", sharedPostgres}, {"mariadb", sharedMariaDB}} {
		t.Run(db.name, func(t *testing.T) {
			base, _ := db.base(t)
			env := startStores(t, base)
			eps := env.StoreEndpoints()
			load := startLoad(t, newClient(t, eps...), eps, writers)
			load.waitAcked(t, "puts before the kill", loadPuts, time.Minute)

			victim := env.Stores[1]
			victim.Kill()
			// The client fails over: puts go on through the survivor.
			load.waitAcked(t, "puts while store 1 is down", loadPuts, time.Minute)
			if err := victim.Start(t.Context()); err != nil {
				t.Fatalf("restarting store 1: %v", err)
			}
			load.waitAcked(t, "puts after store 1 is back", loadPuts, time.Minute)
			checkClientsRecover(t, eps)
			load.verify(t, eps)
		})
	}
}

// TestDatabaseRestartUnderLoad restarts a private database server while
// clients write through two store instances on it: a clean restart
// (PostgreSQL's fast shutdown, MariaDB's SIGTERM), then a crash (SIGKILL of
// the server and its processes, recovery from its log on start).
func TestDatabaseRestartUnderLoad(t *testing.T) {
	skipShort(t)
	faults := []struct {
		name   string
		inject func(context.Context, *testenv.DBServer) error
	}{
		{"restart", func(ctx context.Context, s *testenv.DBServer) error { return s.Restart(ctx) }},
		{"crash", func(ctx context.Context, s *testenv.DBServer) error {
			s.Kill()
			return s.Start(ctx)
		}},
	}
	for _, db := range []database{{"postgres", privatePostgres}, {"mariadb", privateMariaDB}} {
		for _, fault := range faults {
			t.Run(db.name+"-"+fault.name, func(t *testing.T) {
				testDatabaseFault(t, db, fault.name, fault.inject)
			})
		}
	}
}

func testDatabaseFault(t *testing.T, db database, fault string, inject func(context.Context, *testenv.DBServer) error) {
	base, server := db.base(t)
	env := startStores(t, base)
	eps := env.StoreEndpoints()
	load := startLoad(t, newClient(t, eps...), eps, writers)
	load.waitAcked(t, "puts before the "+fault, loadPuts, time.Minute)

	started := time.Now()
	if err := inject(t.Context(), server); err != nil {
		t.Fatalf("%s of %s: %v", fault, db.name, err)
	}
	t.Logf("%s %s done in %s", db.name, fault, time.Since(started).Round(time.Millisecond))
	load.waitAcked(t, "puts after the database "+fault, loadPuts, time.Minute)
	t.Logf("writes recovered %s after the %s began", time.Since(started).Round(time.Millisecond), fault)
	for i, s := range env.Stores {
		if !s.Running() {
			t.Errorf("store %d exited during the database %s (log %s)", i, fault, s.LogPath)
		}
	}
	checkClientsRecover(t, eps)
	load.verify(t, eps)
}

// checkClientsRecover writes through a client pinned to each instance.
func checkClientsRecover(t *testing.T, endpoints []string) {
	t.Helper()
	for i, ep := range endpoints {
		c := newClient(t, ep)
		poll(t, "a put through store "+ep, 30*time.Second, func(ctx context.Context) (bool, error) {
			_, err := c.Put(ctx, "/ha-recovered/"+string(rune('0'+i)), "ok")
			return err == nil, err
		})
	}
}
