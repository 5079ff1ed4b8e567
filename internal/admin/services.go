package admin

import (
	"net/netip"

	"github.com/camgate/camgate/internal/guard"
	"github.com/camgate/camgate/internal/router"
)

// The interfaces below are what the API needs from the services serve
// runs beside it. They are declared here, where they are used, and wired
// with typed fields of Config (cmd/camgate/serve_admin.go), so renaming a
// method they name breaks the build instead of quietly turning a page
// into "not supported".

// GuardCounters is what the API reads from the guard (*guard.Policy): its
// per-rule counters.
type GuardCounters interface {
	AllCounters() map[string]guard.Counters
}

// BanList is what the API needs from the guard's ban list (*guard.Policy)
// to show and lift bans. Unban removes src's bans on rule ("" for every
// rule; the zero Addr for every source) and returns how many were lifted.
type BanList interface {
	Bans() []guard.Ban
	Unban(src netip.Addr, rule string) int
}

// RouterStatus is what the API reads from the upstream router automation
// (*router.Client). Status must not wait for the router: the client keeps
// it up to date in the background.
type RouterStatus interface {
	Status() router.Status
}
