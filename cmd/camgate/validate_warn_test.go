package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCapEffHas(t *testing.T) {
	tests := []struct {
		name   string
		status string
		want   bool
	}{
		{"root's full set", "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n", true},
		{"only net_bind_service", "CapEff:\t0000000000000400\n", true},
		{"only net_admin", "CapEff:\t0000000000001000\n", false},
		{"none", "CapEff:\t0000000000000000\n", false},
		{"no line", "Name:\tx\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := capEffHas(tt.status, capNetBindService); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestValidateWarns: a valid file with a rule on the admin UI's port and
// one below 1024 passes (exit 0) with a warning for each, naming the line
// and the fix.
func TestValidateWarns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "camgate.yaml")
	os.WriteFile(path, []byte("version: 1\nrules:\n  - name: dvr-web\n    external_port: 8443\n    internal_ip: 192.168.1.64\n  - name: dvr-rtsp\n    external_port: 554\n    internal_ip: 192.168.1.64\n"), 0o600)
	var out bytes.Buffer
	code := run(context.Background(), &env{stdout: &out, stderr: &out, getenv: os.Getenv}, []string{"validate", "--config", path})
	if code != 0 {
		t.Fatalf("exit %d, want 0 (warnings do not fail validate):\n%s", code, &out)
	}
	for _, want := range []string{
		path + ": OK (2 rules, 2 enabled)",
		path + `:4: warning: rule "dvr-web": external_port: port 8443 is also the admin UI's (admin.listen 0.0.0.0:8443)`,
		path + `:7: warning: rule "dvr-rtsp": external_port: port 554 is below 1024`,
		"the packaged service",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("got:\n%s\nwant a line with %q", &out, want)
		}
	}
}
