package audit

import (
	"strings"
	"testing"

	"github.com/camgate/camgate/internal/config"
)

func TestKernelLockoutText(t *testing.T) {
	for _, tc := range []struct {
		name, plane string
		rule        config.Rule
		want        string
	}{
		{"kernel candidate", "", config.Rule{Name: "web", ExternalPort: config.PortRange{First: 9000, Last: 9000}, InternalIP: "192.0.2.64"},
			"applies per viewer again"},
		{"userspace by setting", "userspace", config.Rule{Name: "web", ExternalPort: config.PortRange{First: 9000, Last: 9000}, InternalIP: "192.0.2.64"},
			"every remote user shares camgate's address, so one guesser locks everyone out"},
		{"exploit filter keeps it in userspace", "", config.Rule{Name: "web", ExternalPort: config.PortRange{First: 8082, Last: 8082}, InternalIP: "192.0.2.64"},
			"every remote user shares camgate's address, so one guesser locks everyone out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{Version: 1, Dataplane: config.Dataplane(tc.plane), Rules: []config.Rule{tc.rule}}
			var got string
			for _, f := range RuleFindings(cfg) {
				if f.ID == IDRuleOpenToWorld {
					got = f.Meaning
				}
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want it to say %q", got, tc.want)
			}
		})
	}
}
