// Package backend declares the storage contract that keelson store's etcd
// API server is written against, and the sentinel errors every engine
// returns. Each engine lives in a package of its own below this one
// (embedded, postgres, mysql) and is checked by the shared contract suite
// in backendtest.
//
// The model is etcd's: one global revision counter, every write transaction
// that changes something gets the next revision, every key keeps its
// create revision, mod revision and version, and history is readable at any
// revision newer than the compaction point. Keys and values are arbitrary
// bytes, stored byte-exact and ordered bytewise.
package backend
