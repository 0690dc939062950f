// Package postgres is the PostgreSQL storage engine of keelson store
// (PostgreSQL 13 or newer).
//
// Open takes a URL in libpq's form, as pgx parses it:
//
//	postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?PARAM=VALUE&…]
//	postgresql://…                     (same)
//
// Parameters are pgx's and libpq's (sslmode, pool_max_conns, …); any other
// parameter is a run-time setting sent at connect time, so
// ?search_path=SCHEMA keeps the store's tables in SCHEMA (it must exist).
// Passwords never appear in logs or errors.
//
// The tables and the write path are sqlcommon's; this package adds
// pgx pipelining (queued statements travel with the next query), arrays
// (unnest) for one-statement multi-row writes, and LISTEN/NOTIFY for the
// change feed: every batch that commits revisions runs pg_notify in its
// transaction with the new revision as payload; each instance LISTENs on
// a dedicated connection and reads kv_history above the last revision it
// delivered. A missed notification (reconnect) is covered by re-reading
// the revision on reconnect and every second.
//
// Keys are bytea, compared bytewise. Index entries are limited to about a
// third of a page, so keys may be at most MaxKeySize (2600) bytes.
package postgres
