package config

import (
	"testing"
	"time"
)

func TestRuleIdle(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Rule
		want time.Duration
	}{
		{"sdk port, no guard: the default", Rule{ExternalPort: PortRange{8000, 8000}}, DefaultUnguardedIdleTimeout},
		{"raw https, no guard: the default", Rule{ExternalPort: PortRange{443, 443}}, DefaultUnguardedIdleTimeout},
		{"http guard: none", Rule{ExternalPort: PortRange{80, 80}}, 0},
		{"rtsp guard: none", Rule{ExternalPort: PortRange{554, 554}}, 0},
		{"explicit wins", Rule{ExternalPort: PortRange{8000, 8000}, IdleTimeout: Duration(time.Hour)}, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.Idle(); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
