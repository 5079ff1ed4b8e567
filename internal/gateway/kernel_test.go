package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/camgate/camgate/internal/config"
)

// TestPlanWithoutKernel: with no kernel plane every rule runs in
// userspace and says why; a rule that insists on the kernel is refused.
func TestPlanWithoutKernel(t *testing.T) {
	g := New(Config{KernelOff: "camgate lacks CAP_NET_ADMIN"})
	defer g.Close(context.Background())
	cfg := &config.Config{Version: 1, ListenAddress: "192.0.2.1", Rules: []config.Rule{
		{Name: "plain", ExternalPort: config.PortRange{First: 9000, Last: 9000}, InternalIP: "192.0.2.64"},
		{Name: "web", ExternalPort: config.PortRange{First: 8082, Last: 8082}, InternalIP: "192.0.2.64"},
		{Name: "pinned", ExternalPort: config.PortRange{First: 9001, Last: 9001}, InternalIP: "192.0.2.64", Dataplane: config.DataplaneUserspace},
		{Name: "named", ExternalPort: config.PortRange{First: 9002, Last: 9002}, InternalIP: "dvr.lan"},
	}}
	for _, tc := range []struct{ rule, plane, why string }{
		{"plain", PathUserspace, "the kernel path is unavailable: camgate lacks CAP_NET_ADMIN"},
		{"web", PathUserspace, "the Hikvision exploit filter reads the HTTP requests"},
		{"pinned", PathUserspace, "the rule sets dataplane: userspace"},
		{"named", PathUserspace, "internal_ip is a host name"},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			p, err := g.plan(cfg.Rule(tc.rule), cfg)
			if err != nil || p.Dataplane != tc.plane || !strings.Contains(p.Why, tc.why) {
				t.Fatalf("got %+v, %v; want %s because %q", p, err, tc.plane, tc.why)
			}
		})
	}

	forced := cfg.Clone()
	forced.Rules[0].Dataplane = config.DataplaneKernel
	if _, err := g.plan(&forced.Rules[0], forced); err == nil || !strings.Contains(err.Error(), `rule "plain": dataplane kernel, but the kernel path is unavailable: camgate lacks CAP_NET_ADMIN`) {
		t.Fatalf("forced kernel without a kernel plane: got %v", err)
	}
}

// TestApplyUserspaceFallbackStatus: a plain rule served in userspace for
// want of a kernel plane says so in Status.
func TestApplyUserspaceFallbackStatus(t *testing.T) {
	port := freePorts(t, 1)[0]
	g := New(Config{KernelOff: "IPv4 forwarding is off"})
	defer g.Close(context.Background())
	cfg := mustLoad(t, fmt.Sprintf("version: 1\nlisten_address: 127.0.0.1\nrules:\n  - {name: e, external_port: %d, internal_ip: 127.0.0.1, internal_port: %d}\n", port, echo(t)))
	if _, err := g.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	p := g.Status().Rules[0].Path
	if p.Dataplane != PathUserspace || p.Why != "a loopback device address cannot be reached by forwarded packets" {
		t.Fatalf("got %+v", p)
	}
}
