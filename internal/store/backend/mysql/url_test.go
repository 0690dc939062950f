package mysql

import (
	"strings"
	"testing"

	"github.com/keelson-dev/keelson/internal/store/backend/sqlcommon"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in                        string
		user, pass, net, addr, db string
		wantErr                   bool
	}{
		{in: "mysql://root@tcp(127.0.0.1:3306)/test", user: "root", net: "tcp", addr: "127.0.0.1:3306", db: "test"},
		{in: "mysql://u:p%40ss@tcp(db:3307)/k?timeout=5s", user: "u", pass: "p%40ss", net: "tcp", addr: "db:3307", db: "k"},
		{in: "mysql://u:s3cret@unix(/run/mysqld/mysqld.sock)/k", user: "u", pass: "s3cret", net: "unix", addr: "/run/mysqld/mysqld.sock", db: "k"},
		{in: "mysql://u:p%40ss@db.example:3307/k?timeout=5s", user: "u", pass: "p@ss", net: "tcp", addr: "db.example:3307", db: "k"},
		{in: "mysql://root@localhost/test", user: "root", net: "tcp", addr: "localhost:3306", db: "test"},
		{in: "mysql://root@[::1]:3306/test", user: "root", net: "tcp", addr: "[::1]:3306", db: "test"},
		{in: "mysql://root@127.0.0.1:3306/", wantErr: true},
		{in: "mysql://root@tcp(127.0.0.1:3306)/", wantErr: true},
		{in: "postgres://root@127.0.0.1/test", wantErr: true},
		{in: "mysql:///test", wantErr: true},
	}
	for _, tt := range tests {
		cfg, err := ParseURL(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%s: no error", tt.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if cfg.User != tt.user || cfg.Passwd != tt.pass || cfg.Net != tt.net || cfg.Addr != tt.addr || cfg.DBName != tt.db {
			t.Errorf("%s: got user=%q pass=%q net=%q addr=%q db=%q", tt.in, cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName)
		}
		if !cfg.InterpolateParams || !cfg.MultiStatements {
			t.Errorf("%s: interpolateParams/multiStatements not forced", tt.in)
		}
	}
}

// FuzzParseURL: the parser never panics and never puts the password in an
// error or in the redacted URL.
func FuzzParseURL(f *testing.F) {
	f.Add("root", "tcp(127.0.0.1:3306)", "test", "")
	f.Add("u", "db:3306", "k", "timeout=5s")
	f.Add("u", "unix(/tmp/s)", "k", "tls=bogus")
	f.Add("", "[::1]", "", "x=%zz")
	f.Add("a:b", "tcp(h", "d/e", "password=z")
	const pw = "Zq9SecretPw"
	f.Fuzz(func(t *testing.T, user, host, db, query string) {
		for _, u := range []string{
			"mysql://" + user + ":" + pw + "@" + host + "/" + db + "?" + query,
			"mysql://" + user + "@" + host + "/" + db + "?" + query,
		} {
			if strings.Contains(user+host+db+query, pw[:4]) {
				return
			}
			_, err := ParseURL(u)
			if err != nil && strings.Contains(err.Error(), pw) {
				t.Fatalf("error shows the password: %v", err)
			}
			if r := sqlcommon.RedactURL(u); strings.Contains(r, pw) {
				t.Fatalf("redacted url shows the password: %s", r)
			}
		}
	})
}
