package main

import (
	"context"
	"errors"
)

// runRouter is not built yet; its feature's issue replaces this file.
func runRouter(ctx context.Context, e *env, args []string) error {
	return errors.New("not available in this build yet")
}
