package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildInfoFallback(t *testing.T) {
	vcs := func(mainVersion string, kv ...string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/camgate/camgate", Version: mainVersion}}
			for i := 0; i+1 < len(kv); i += 2 {
				bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
			}
			return bi, true
		}
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	tests := []struct {
		name       string
		v, c, d    string
		read       func() (*debug.BuildInfo, bool)
		want       build
		wantString string
	}{
		{"stamped wins over build info", "1.4.0", "abc1234", "2026-12-06T03:00:00Z",
			vcs("v0.9.0", "vcs.revision", "fff", "vcs.time", "2020-01-01T00:00:00Z", "vcs.modified", "true"),
			build{Version: "1.4.0", Commit: "abc1234", Date: "2026-12-06T03:00:00Z", Go: "go1.26.8"},
			"camgate 1.4.0 (commit abc1234, built 2026-12-06T03:00:00Z, go1.26.8)"},
		{"go install @version", "", "", "", vcs("v1.2.0"),
			build{Version: "v1.2.0", Commit: "unknown", Date: "unknown", Go: "go1.26.8"},
			"camgate v1.2.0 (commit unknown, built unknown, go1.26.8)"},
		{"git checkout build", "", "", "",
			vcs("(devel)", "vcs.revision", "0123abcd", "vcs.time", "2026-12-01T10:00:00Z", "vcs.modified", "true"),
			build{Version: "dev", Commit: "0123abcd", Date: "2026-12-01T10:00:00Z", Go: "go1.26.8", Modified: true},
			"camgate dev (commit 0123abcd+modified, built 2026-12-01T10:00:00Z, go1.26.8)"},
		{"nothing known", "", "", "", none,
			build{Version: "dev", Commit: "unknown", Date: "unknown"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := buildInfoFrom(tt.v, tt.c, tt.d, tt.read)
			if tt.read == nil || tt.wantString == "" {
				got.Go = ""
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if tt.wantString != "" && got.String() != tt.wantString {
				t.Errorf("got %q, want %q", got.String(), tt.wantString)
			}
		})
	}
}

// TestVersionStamped builds the binary the way scripts/package.sh does and
// checks that `camgate version` prints the stamp.
func TestVersionStamped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "camgate")
	ld := "-X main.version=9.8.7 -X main.commit=feedbeef -X main.buildDate=2026-12-06T03:04:05Z"
	if out, err := exec.Command("go", "build", "-ldflags", ld, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var b build
	if err := json.Unmarshal(out, &b); err != nil {
		t.Fatalf("version --json: %v: %s", err, out)
	}
	if b.Version != "9.8.7" || b.Commit != "feedbeef" || b.Date != "2026-12-06T03:04:05Z" {
		t.Errorf("got %+v, want the stamped 9.8.7, feedbeef, 2026-12-06T03:04:05Z", b)
	}
	out, _ = exec.Command(bin, "--version").Output()
	if want := "camgate 9.8.7 (commit feedbeef, built 2026-12-06T03:04:05Z"; !strings.HasPrefix(string(out), want) {
		t.Errorf("--version printed %q, want it to start with %q", out, want)
	}
}

func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	e := &env{stdout: &out, stderr: &out, getenv: os.Getenv}
	if err := runVersion(context.Background(), e, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "camgate dev (commit ") {
		t.Errorf("got %q, want the unstamped test binary to say dev and its commit", out.String())
	}
}
