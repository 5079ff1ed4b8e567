package main

import (
	"context"
	"log/slog"

	"github.com/camgate/camgate/internal/site"
)

// startRouter starts upstream router automation for serve and returns a
// function that removes its mappings. The router feature owns this file.
func startRouter(ctx context.Context, log *slog.Logger, s *site.Site) (func(context.Context), error) {
	return nil, nil
}
