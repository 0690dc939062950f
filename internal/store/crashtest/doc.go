// Package crashtest holds an end-to-end crash test of `keelson store` on
// its embedded engine, through the real binary: concurrent etcd clients
// write (puts and compare-on-mod_revision txns) while the store process is
// killed with SIGKILL and restarted on the same data directory several
// times; every acknowledged write must survive with the right value,
// version and revision, the history must be gapless, and a watch opened
// before the first crash must see every event exactly once, in order.
//
// The package has no non-test code. The binary is $KEELSON_BIN/keelson
// when KEELSON_BIN is set (as `make test` does), otherwise the test builds
// it into a temporary directory.
package crashtest
