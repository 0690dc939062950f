// Package nodeports rejects nodes where a host port the pod asks for is
// already bound (same protocol and port, same IP or either 0.0.0.0).
package nodeports
