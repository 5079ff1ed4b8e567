package guard

import (
	"fmt"
	"net/netip"
)

// ACL is a rule's source access list. Deny wins over Allow; an empty Allow
// admits every source not denied. The zero ACL admits everyone.
type ACL struct {
	Allow []netip.Prefix
	Deny  []netip.Prefix
}

// Permits reports whether src may connect.
func (a ACL) Permits(src netip.Addr) bool {
	src = src.Unmap()
	for _, p := range a.Deny {
		if p.Contains(src) {
			return false
		}
	}
	if len(a.Allow) == 0 {
		return true
	}
	for _, p := range a.Allow {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// Check returns nil if src may connect, or an error saying which list
// refused it.
func (a ACL) Check(src netip.Addr) error {
	if a.Permits(src) {
		return nil
	}
	for _, p := range a.Deny {
		if p.Contains(src.Unmap()) {
			return fmt.Errorf("source %s is in deny %s", src, p)
		}
	}
	return fmt.Errorf("source %s is not in the allow list", src)
}
