package main

import (
	"log/slog"

	"github.com/camgate/camgate/internal/gateway"
)

// newPolicy builds the guard policy for serve. Nil means the gateway's
// default (allow/deny lists only). The guard feature owns this file.
func newPolicy(log *slog.Logger, stateDir string) (gateway.Policy, error) {
	return nil, nil
}
