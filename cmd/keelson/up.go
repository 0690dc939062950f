package main

import (
	"context"
	"errors"
	"io"
)

// runUp is written by the `keelson up` work (issue 2).
func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}
