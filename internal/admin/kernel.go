package admin

import "github.com/camgate/camgate/internal/gateway"

// kernelRules lists the running rules on the kernel path, so a rule check
// tests their nftables DNAT rather than a listener (docs/KERNEL.md).
func (s *Server) kernelRules() (map[string]bool, error) {
	out := map[string]bool{}
	for _, r := range s.site.Gateway().Status().Rules {
		if r.Path.Dataplane == gateway.PathKernel {
			out[r.Name] = true
		}
	}
	return out, nil
}
