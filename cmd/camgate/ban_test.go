package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/guard"
)

func TestBanCommand(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "camgate-state")
	os.MkdirAll(state, 0o700)
	now := time.Now().UTC()
	os.WriteFile(guard.BanFile(state), []byte(`{"version": 1, "bans": [
  {"source": "198.18.0.11/32", "rule": "dvr-web", "device": "198.19.0.64", "reason": "4 failed logins within 10m0s", "since": "`+now.Format(time.RFC3339)+`", "until": "`+now.Add(time.Hour).Format(time.RFC3339)+`"},
  {"source": "2001:db8:1:2::/64", "rule": "dvr-rtsp", "device": "198.19.0.64", "reason": "4 failed logins within 10m0s", "since": "`+now.Format(time.RFC3339)+`", "until": "`+now.Add(time.Hour).Format(time.RFC3339)+`"},
  {"source": "198.18.0.12/32", "rule": "dvr-web", "reason": "expired", "since": "2020-01-01T00:00:00Z", "until": "2020-01-01T00:30:00Z"}
]}`), 0o600)
	cfg := filepath.Join(dir, "camgate.yaml") // does not exist: the state dir is next to it
	runBanCmd := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := run(context.Background(), &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }},
			append([]string{"ban"}, append(args, "--config", cfg)...))
		return out.String() + errb.String(), code
	}
	tests := []struct {
		args []string
		code int
		want []string
		not  []string
	}{
		{[]string{"list"}, 0, []string{"198.18.0.11", "2001:db8:1:2::/64", "dvr-web", "4 failed logins"}, []string{"198.18.0.12"}},
		{[]string{"list", "--rule", "dvr-rtsp"}, 0, []string{"2001:db8:1:2::/64"}, []string{"198.18.0.11"}},
		{[]string{"list", "--source", "2001:db8:1:2::99", "--json"}, 0, []string{`"source": "2001:db8:1:2::/64"`}, []string{"198.18.0.11"}},
		{[]string{"list", "--source", "nope"}, 2, []string{"not an IP address"}, nil},
		{[]string{"frobnicate"}, 2, []string{"unknown action"}, nil},
		{[]string{"clear", "--source", "198.18.0.11"}, 0, []string{"cleared 1 ban(s) (source 198.18.0.11)"}, nil},
		{[]string{"list"}, 0, []string{"2001:db8:1:2::/64"}, []string{"198.18.0.11"}},
		{[]string{"clear"}, 0, []string{"cleared 1 ban(s)"}, nil},
		{[]string{"list"}, 0, []string{"no bans in force"}, nil},
	}
	for _, tt := range tests {
		out, code := runBanCmd(tt.args...)
		if code != tt.code {
			t.Fatalf("ban %v: got exit %d, want %d\n%s", tt.args, code, tt.code, out)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("ban %v: got %q, want %q in it", tt.args, out, w)
			}
		}
		for _, w := range tt.not {
			if strings.Contains(out, w) {
				t.Errorf("ban %v: got %q, want no %q", tt.args, out, w)
			}
		}
	}
}
