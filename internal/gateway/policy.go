package gateway

import (
	"fmt"
	"net/netip"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/forward"
	"github.com/camgate/camgate/internal/guard"
)

// DefaultPolicy enforces each rule's allow and deny lists and nothing more.
type DefaultPolicy struct{}

// Hooks returns an admission check for the rule's access lists, or nil
// when the rule has none.
func (DefaultPolicy) Hooks(r *config.Rule) (func(netip.AddrPort, string) (func(), error), forward.Handler, error) {
	acl := guard.ACL{Allow: r.AllowPrefixes(), Deny: r.DenyPrefixes()}
	if len(acl.Allow) == 0 && len(acl.Deny) == 0 {
		return nil, nil, nil
	}
	return func(src netip.AddrPort, _ string) (func(), error) {
		if err := acl.Check(src.Addr()); err != nil {
			return nil, fmt.Errorf("%w: %v", forward.ErrRefused, err)
		}
		return nil, nil
	}, nil, nil
}

// Forget does nothing: DefaultPolicy keeps no state.
func (DefaultPolicy) Forget([]string) {}
