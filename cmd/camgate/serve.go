package main

import (
	"context"
	"errors"
)

func runServe(ctx context.Context, e *env, args []string) error {
	return errors.New("not available in this build yet")
}

func runValidate(ctx context.Context, e *env, args []string) error {
	return errors.New("not available in this build yet")
}
