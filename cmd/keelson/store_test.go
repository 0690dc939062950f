package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRunStoreFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		wantErr error  // errors.Is target, or nil
		wantMsg string // substring of the error, if not errors.Is
	}{
		{"help", []string{"--help"}, flag.ErrHelp, ""},
		{"unknown flag", []string{"--nope"}, errUsage, ""},
		{"extra argument", []string{"extra"}, errUsage, ""},
		{"bad listen", []string{"--listen", "nonsense"}, nil, "listen address"},
		{"data dir is a file", []string{"--listen", "127.0.0.1:0", "--data-dir", file}, nil, "not a directory"},
		{"bad log level", []string{"--log-level", "loud"}, nil, "--log-level"},
		{"backend not compiled in", []string{"--listen", "127.0.0.1:0", "--metrics-listen", "", "--backend", "cockroach://u:secret@h/db"}, nil, "not compiled in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := runStore(t.Context(), tt.args, &out, &errb)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			case err == nil || !strings.Contains(err.Error(), tt.wantMsg):
				t.Fatalf("err = %v, want containing %q", err, tt.wantMsg)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Fatalf("error leaks credentials: %v", err)
			}
		})
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunStoreServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out bytes.Buffer
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runStore(ctx, []string{"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--data-dir", t.TempDir()}, &out, &logs)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "store serving etcd v3 API") {
		select {
		case err := <-done:
			t.Fatalf("runStore returned early: %v\n%s", err, logs.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not start:\n%s", logs.String())
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runStore: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("runStore did not stop")
	}
	if !strings.Contains(logs.String(), "store stopped") {
		t.Fatalf("logs: %s", logs.String())
	}
}
