package audit

import (
	"testing"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/store"
)

// TestStarterFollowedPassesAudit: an owner who does what the starter file
// says (put in the DVR's address, enable the web and RTSP rules) gets no
// high or medium finding, as after `camgate device add`.
func TestStarterFollowedPassesAudit(t *testing.T) {
	cfg, err := config.Load([]byte(store.Starter))
	if err != nil {
		t.Fatal(err)
	}
	on := true
	for _, name := range []string{"dvr-https", "dvr-rtsp"} {
		r := cfg.Rule(name)
		if r == nil {
			t.Fatalf("the starter has no rule %q", name)
		}
		r.Enabled = &on
	}
	for _, f := range RuleFindings(cfg) {
		if f.Severity == Critical || f.Severity == High || f.Severity == Medium {
			t.Errorf("starter with dvr-https and dvr-rtsp enabled: got %s finding %q (%s), want none high or medium", f.Severity, f.ID, f.Title)
		}
	}
}

// TestDeviceTargetBehindTLSTermination: a rule on which camgate terminates
// TLS reaches the device over plain HTTP, so the device checks read ISAPI
// over http://, not https://, on the internal port.
func TestDeviceTargetBehindTLSTermination(t *testing.T) {
	cfg := mustConfig(t, `rules:
  - {name: web, external_port: 8443, internal_ip: 192.0.2.64, internal_port: 8082, tls: terminate, guard: auth}
`)
	ts := deviceTargets(cfg, nil)
	if len(ts) != 1 || ts[0].scheme != "http" || ts[0].port != 8082 {
		t.Fatalf("got %+v, want one target http on 8082", ts)
	}
}
