package main

import (
	"context"
	"errors"
)

// runRule is not built yet; its feature's issue replaces this file.
func runRule(ctx context.Context, e *env, args []string) error {
	return errors.New("not available in this build yet")
}
