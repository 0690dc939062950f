// Package mysql is the MySQL / MariaDB / TiDB storage engine of keelson
// store (MySQL 8, MariaDB 10.11, TiDB 6.2 or newer for SAVEPOINT).
//
// Open takes either of two URL forms:
//
//	mysql://USER[:PASSWORD]@tcp(HOST:PORT)/DB[?PARAM=VALUE&…]   go-sql-driver DSN after mysql://
//	mysql://USER[:PASSWORD]@unix(/path/to/socket)/DB[?…]
//	mysql://USER[:PASSWORD]@HOST[:PORT]/DB[?…]                   URL form (port 3306 by default;
//	                                                            percent-encode special characters)
//
// Parameters are go-sql-driver's (tls, timeout, …). The engine always sets
// interpolateParams=true and multiStatements=true: statements that return
// nothing are queued and sent with the next query in one round trip.
// Passwords never appear in logs or errors.
//
// The tables and the write path are sqlcommon's. SQL stays within what
// TiDB accepts: no triggers, procedures or events; upserts are INSERT … ON
// DUPLICATE KEY UPDATE; GET_LOCK serialises migrations.
//
// MySQL has no push notification, so the change feed polls the meta
// revision row while at least one Watch runs: every 2 ms after a change,
// backing off to 10 ms when idle; commits made by this instance wake its
// watchers at once. A poll is a primary-key read of one row. InnoDB shows
// a commit to other sessions before its redo is flushed, so a poll that
// finds a revision this instance is not committing itself first commits a
// one-row write (meta row 2), whose flush covers every commit visible
// before it, on the connection it polled with, and only then reports the
// revision (a read cache's barrier, which reads the same row, does not
// move the feed here): watchers never receive a revision that a crash of
// the server could still lose.
//
// Keys are VARBINARY(3064) (byte order, binary collation; 3064 bytes plus
// the 8-byte revision fit InnoDB's 3072-byte index limit), so keys may be
// at most MaxKeySize bytes. Values are LONGBLOB; the server's
// max_allowed_packet must exceed the largest request.
package mysql
