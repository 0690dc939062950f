// Package ha tests several keelson store instances on one database (high
// availability) through the binaries, under load and under faults:
//
//   - a kill -9 of one store instance while etcd clients write through
//     both instances (PostgreSQL and MariaDB);
//   - a clean restart and a crash (SIGKILL) of the database server while
//     they write (a private PostgreSQL, then a private MariaDB, each in a
//     temporary directory on its own port, so that the machine's shared
//     servers on 5432 and 3306, which other tests use in parallel, are never
//     restarted);
//   - two kube-apiservers, each on a different store instance over one
//     PostgreSQL database: what one writes the other reads, lists and
//     watches; a stale update through the other conflicts; and a kill -9 of
//     one instance under apiserver load loses no acknowledged object.
//
// After each fault: no acknowledged write is lost or applied twice (every
// key is put once, so each must be at version 1), both instances return
// the same data, every instance's watch delivers each event exactly once
// and in revision order, acknowledged puts read back through a single
// instance are visible (linearizable reads across instances), and the
// clients, store instances and kube-apiservers recover.
//
// Each test gets a fresh database (a PostgreSQL schema or a MariaDB
// database named keelson_ha_<random>, dropped afterwards). The shared
// servers are KEELSON_TEST_POSTGRES (default
// postgres://postgres@127.0.0.1:5432/test) and KEELSON_TEST_MYSQL (default
// mysql://root@tcp(127.0.0.1:3306)/test). Private servers need the
// PostgreSQL and MariaDB server binaries (initdb and postgres in $PATH or
// /usr/lib/postgresql/*/bin; mariadbd and mariadb-install-db); when the
// tests run as root they run as the postgres and mysql OS users. A missing
// binary fails the test with what to install. bin/keelson (`make build`)
// and bin/kube-apiserver (`make tools`) are used; the tests are skipped
// with -short.
package ha
