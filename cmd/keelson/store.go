package main

import (
	"context"
	"errors"
	"io"
)

// runStore is written by the store work (issue 2).
func runStore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}
