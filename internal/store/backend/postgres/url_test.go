package postgres

import (
	"strings"
	"testing"

	"github.com/keelson-dev/keelson/internal/store/backend/sqlcommon"
)

func TestParseURL(t *testing.T) {
	cfg, err := ParseURL("postgres://keel:s3cret@db.example:5433/k?sslmode=disable&search_path=s1")
	if err != nil {
		t.Fatal(err)
	}
	cc := cfg.ConnConfig
	if cc.User != "keel" || cc.Password != "s3cret" || cc.Host != "db.example" || cc.Port != 5433 || cc.Database != "k" ||
		cc.RuntimeParams["search_path"] != "s1" || cfg.MaxConns != defaultMaxConns {
		t.Errorf("got %+v", cc)
	}
	for _, bad := range []string{"mysql://x@y/z", "postgres://u:s3cret@h:notaport/db", "nourl"} {
		_, err := ParseURL(bad)
		if err == nil {
			t.Errorf("%s: no error", bad)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error shows the password: %v", bad, err)
		}
	}
}

// FuzzParseURL: the parser never panics and never puts the password in an
// error or in the redacted URL.
func FuzzParseURL(f *testing.F) {
	f.Add("postgres", "u", "127.0.0.1:5432", "test", "sslmode=disable")
	f.Add("postgresql", "", "h:x", "", "pool_max_conns=zz")
	f.Add("postgres", "a:b", "[::1", "d", "password=q")
	const pw = "Zq9SecretPw"
	f.Fuzz(func(t *testing.T, scheme, user, host, db, query string) {
		if strings.Contains(scheme+user+host+db+query, pw[:4]) {
			return
		}
		u := scheme + "://" + user + ":" + pw + "@" + host + "/" + db + "?" + query
		_, err := ParseURL(u)
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Fatalf("error shows the password: %v", err)
		}
		if r := sqlcommon.RedactURL(u); strings.Contains(r, pw) {
			t.Fatalf("redacted url shows the password: %s", r)
		}
	})
}
