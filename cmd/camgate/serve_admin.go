package main

import (
	"context"
	"log/slog"

	"github.com/camgate/camgate/internal/site"
)

// startAdmin starts the admin UI and API for serve and returns a function
// that stops it. The admin feature owns this file.
func startAdmin(ctx context.Context, log *slog.Logger, s *site.Site) (func(context.Context), error) {
	return nil, nil
}
