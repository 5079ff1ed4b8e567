package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The router status command against real routers is tested end to end in
// internal/router (TestServeTwoLevel); these are the argument checks.
func TestRouterCommandArgs(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\nrouter: {mode: sometimes}\nrules: []\n"), 0o600)
	tests := []struct {
		args   []string
		code   int
		stderr string
		stdout string
	}{
		{[]string{"router"}, 2, "missing action", "camgate router status"},
		{[]string{"router", "list"}, 2, `unknown action "list"`, ""},
		{[]string{"router", "status", "--bogus"}, 2, "flag provided but not defined", ""},
		{[]string{"router", "status", "--config", filepath.Join(dir, "missing.yaml")}, 1, "cannot read", ""},
		{[]string{"router", "status", "--config", bad}, 1, `router.mode: "sometimes" is not off, auto, upnp, natpmp or pcp`, ""},
		{[]string{"router", "--help"}, 0, "", "read-only"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errs := runCmd(t, nil, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.stderr) || !strings.Contains(out, tc.stdout) {
				t.Fatalf("got exit %d\nstdout: %s\nstderr: %s\nwant exit %d, stderr with %q, stdout with %q", code, out, errs, tc.code, tc.stderr, tc.stdout)
			}
		})
	}
}
