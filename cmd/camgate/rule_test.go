package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/admin"
	"github.com/camgate/camgate/internal/gateway"
	"github.com/camgate/camgate/internal/site"
	"github.com/camgate/camgate/internal/store"
)

// runCLI runs camgate with args and returns its exit code and output.
func runCLI(t *testing.T, environ map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, getenv: func(k string) string { return environ[k] }}
	code := run(context.Background(), e, args)
	return code, out.String(), errb.String()
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestRuleCLIKeepsTheOwnersComments edits a hand-written, commented file
// the way an owner would after reading docs/CONFIG.md: the comments on the
// rules that stay must still be there afterwards.
func TestRuleCLIKeepsTheOwnersComments(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`# Shop on Main Street. Installer: Sam, 555-0100.
version: 1
listen_address: 127.0.0.1
rules:
  # Recorder live video, for the owner's phone.
  - name: nvr-rtsp
    external_port: 554
    internal_ip: 192.168.1.65 # NVR in the back office
    enabled: false
    allow: [203.0.113.0/24]
admin:
  listen: "127.0.0.1:%d"
`, freeLoopbackPort(t)))
	if code, out, errs := runCLI(t, nil, "rule", "enable", "nvr-rtsp", "--config", cfg); code != 0 {
		t.Fatalf("enable: got %d %q %q", code, out, errs)
	}
	if code, out, errs := runCLI(t, nil, "rule", "add", "--config", cfg, "--name", "nvr-web",
		"--external-port", "8082", "--internal-ip", "192.168.1.65", "--internal-port", "80"); code != 0 {
		t.Fatalf("add: got %d %q %q", code, out, errs)
	}
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# Shop on Main Street. Installer: Sam, 555-0100.\n",
		"  # Recorder live video, for the owner's phone.\n  - name: nvr-rtsp\n",
		"    internal_ip: 192.168.1.65 # NVR in the back office\n",
		"    allow: [203.0.113.0/24]\n",
		"  - name: nvr-web\n",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("after enable and add, the file lost %q:\n%s", want, b)
		}
	}
	if c, err := store.Load(cfg); err != nil || !c.Rule("nvr-rtsp").IsEnabled() || c.Rule("nvr-web") == nil {
		t.Fatalf("file after the edits: %v", err)
	}
}

func TestRuleCLIEditsTheFileWithoutAGateway(t *testing.T) {
	dir := t.TempDir()
	// admin.listen names a port nobody listens on: no gateway is running.
	cfg := writeConfig(t, dir, fmt.Sprintf("version: 1\nlisten_address: 127.0.0.1\nrules: []\nadmin:\n  listen: \"127.0.0.1:%d\"\n", freeLoopbackPort(t)))
	code, out, errs := runCLI(t, nil, "rule", "add", "--config", cfg, "--name", "dvr-web", "--description", "DVR web page",
		"--external-port", "8082", "--internal-ip", "192.168.1.64", "--internal-port", "80", "--allow", "203.0.113.0/24, 198.51.100.7")
	if code != 0 || !strings.Contains(out, `rule "dvr-web" added in `) {
		t.Fatalf("add: got %d %q %q", code, out, errs)
	}
	c, err := store.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := c.Rule("dvr-web")
	if r == nil || r.Internal().First != 80 || len(r.Allow) != 2 || !r.IsEnabled() {
		t.Fatalf("file has %+v", r)
	}

	code, out, _ = runCLI(t, nil, "rule", "list", "--config", cfg)
	if code != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, "dvr-web  DVR web page  8082") {
		t.Fatalf("list: got %d\n%s", code, out)
	}
	// Flags after the rule name work too.
	if code, out, errs := runCLI(t, nil, "rule", "disable", "dvr-web", "--config", cfg); code != 0 || !strings.Contains(out, "disabled") {
		t.Fatalf("disable: got %d %q %q", code, out, errs)
	}
	if c, _ := store.Load(cfg); c.Rule("dvr-web").IsEnabled() {
		t.Fatal("disable did not reach the file")
	}
	code, out, _ = runCLI(t, nil, "rule", "list", "--config", cfg, "--json")
	var list []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0]["enabled"] != false {
		t.Fatalf("list --json: got %d %s", code, out)
	}

	// An invalid rule is refused with the validator's words; the file
	// stays as it was.
	before, _ := os.ReadFile(cfg)
	code, _, errs = runCLI(t, nil, "rule", "add", "--config", cfg, "--name", "other", "--external-port", "8082", "--internal-ip", "192.168.1.300")
	if code != 1 || !strings.Contains(errs, `internal_ip: "192.168.1.300" is not a valid IP address`) {
		t.Fatalf("invalid add: got %d %q", code, errs)
	}
	if after, _ := os.ReadFile(cfg); !bytes.Equal(before, after) {
		t.Fatal("a refused change touched the file")
	}
	if code, _, errs := runCLI(t, nil, "rule", "rm", "--config", cfg, "nope"); code != 1 || !strings.Contains(errs, `no rule called "nope"`) {
		t.Fatalf("rm unknown: got %d %q", code, errs)
	}
	if code, _, _ := runCLI(t, nil, "rule", "rm", "--config", cfg, "dvr-web"); code != 0 {
		t.Fatalf("rm: got %d", code)
	}
	if c, _ := store.Load(cfg); len(c.Rules) != 0 {
		t.Fatal("rm did not reach the file")
	}
	// Every change is in the audit log.
	b, _ := os.ReadFile(filepath.Join(dir, "camgate-state", admin.AuditFile))
	for _, want := range []string{`"action":"rule.create","target":"dvr-web"`, `"action":"rule.disable"`, `"action":"rule.delete"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("audit log lacks %s:\n%s", want, b)
		}
	}
	// Usage errors.
	for _, args := range [][]string{{"rule"}, {"rule", "frob"}, {"rule", "add", "--config", cfg}, {"rule", "rm", "--config", cfg}, {"rule", "add", "--config", cfg, "--name", "x", "--external-port", "http", "--internal-ip", "1.2.3.4"}} {
		if code, _, _ := runCLI(t, nil, args...); code != 2 {
			t.Errorf("%v: got exit %d, want 2", args, code)
		}
	}
}

// testGateway is a gateway with its admin API running in this process,
// and an API token made the way the owner makes one in the UI.
type testGateway struct {
	cfgPath string
	g       *gateway.Gateway
	s       *site.Site
	token   string
}

// startTestGateway writes body (with an admin: section on a free loopback
// port appended) to dir/camgate.yaml and serves it as serve does.
func startTestGateway(t *testing.T, dir, body string) *testGateway {
	t.Helper()
	port := freeLoopbackPort(t)
	cfgPath := writeConfig(t, dir, fmt.Sprintf("%sadmin:\n  listen: \"127.0.0.1:%d\"\n", body, port))
	cfg, data, err := store.LoadData(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	g := gateway.New(gateway.Config{})
	if _, err := g.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close(context.Background()) })
	s := site.New(site.Config{Path: cfgPath, Gateway: g, Data: data})
	srv, err := admin.New(admin.Config{Site: s})
	if err != nil {
		t.Fatal(err)
	}
	running, err := admin.Listen(context.Background(), srv, cfg.Admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { running.Shutdown(context.Background()) })

	// The owner sets up the account and makes a token, as in the UI.
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	post := func(path, session string, body any) map[string]any {
		return apiPost(t, hc, running.URL+path, session, body)
	}
	sess := post("/api/v1/setup", "", map[string]string{"token": srv.SetupToken(), "password": "kiwi-lantern-47-grove"})["session"].(string)
	token := post("/api/v1/tokens", sess, map[string]string{"name": "cli"})["secret"].(string)
	return &testGateway{cfgPath: cfgPath, g: g, s: s, token: token}
}

// TestRuleCLIUsesTheRunningGateway runs a gateway and its admin API in
// this process and checks that `camgate rule` goes through the API.
func TestRuleCLIUsesTheRunningGateway(t *testing.T) {
	dir := t.TempDir()
	tg := startTestGateway(t, dir, "version: 1\nlisten_address: 127.0.0.1\nrules: []\n")
	cfgPath, g, s, token := tg.cfgPath, tg.g, tg.s, tg.token

	// Without a token the CLI refuses rather than edit the file under the
	// running gateway.
	code, _, errs := runCLI(t, nil, "rule", "list", "--config", cfgPath)
	if code != 1 || !strings.Contains(errs, "a gateway is running") || !strings.Contains(errs, "CAMGATE_TOKEN") {
		t.Fatalf("no token: got %d %q", code, errs)
	}

	envWith := map[string]string{"CAMGATE_TOKEN": token}
	extPort := freeLoopbackPort(t)
	code, out, errs := runCLI(t, envWith, "rule", "add", "--config", cfgPath, "--name", "cam", "--external-port", fmt.Sprint(extPort), "--internal-ip", "127.0.0.1", "--internal-port", "9")
	if code != 0 || !strings.Contains(out, "applied by the running gateway") {
		t.Fatalf("add via API: got %d %q %q", code, out, errs)
	}
	if g.Addrs("cam") == nil {
		t.Fatal("the running gateway is not listening for the new rule")
	}
	// The API's validator answers for the CLI.
	code, _, errs = runCLI(t, envWith, "rule", "add", "--config", cfgPath, "--name", "cam2", "--external-port", fmt.Sprint(extPort), "--internal-ip", "127.0.0.1")
	if code != 1 || !strings.Contains(errs, "already used by rule") {
		t.Fatalf("conflicting add via API: got %d %q", code, errs)
	}
	// A token file works as well as the environment.
	tf := filepath.Join(dir, "token")
	os.WriteFile(tf, []byte(token+"\n"), 0o600)
	if code, out, errs := runCLI(t, nil, "rule", "disable", "cam", "--config", cfgPath, "--token-file", tf); code != 0 || !strings.Contains(out, "applied by the running gateway") {
		t.Fatalf("disable via API: got %d %q %q", code, out, errs)
	}
	if g.Addrs("cam") != nil {
		t.Fatal("still listening after disable")
	}
	code, out, _ = runCLI(t, envWith, "rule", "list", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "cam ") || !strings.Contains(out, " no") {
		t.Fatalf("list via API: got %d\n%s", code, out)
	}
	if code, _, _ := runCLI(t, envWith, "rule", "rm", "cam", "--config", cfgPath); code != 0 || s.Config().Rule("cam") != nil {
		t.Fatalf("rm via API: got %d", code)
	}
	// A wrong token is refused by the gateway.
	if code, _, errs := runCLI(t, map[string]string{"CAMGATE_TOKEN": "cgt_wrongwrongwrongwrongwrongwrong"}, "rule", "list", "--config", cfgPath); code != 1 || !strings.Contains(errs, "401") {
		t.Fatalf("wrong token: got %d %q", code, errs)
	}
}

// TestRuleCLIRefusesToOverwriteAHandEdit: the owner edits camgate.yaml
// and, before reloading, changes a rule from the CLI. The gateway refuses
// with 409 "camgate.yaml changed on disk: reload it first" and the hand
// edit stays in the file (issue #13, item 1).
func TestRuleCLIRefusesToOverwriteAHandEdit(t *testing.T) {
	dir := t.TempDir()
	tg := startTestGateway(t, dir, fmt.Sprintf("version: 1\nlisten_address: 127.0.0.1\nrules:\n  - name: cam\n    external_port: %d\n    internal_ip: 127.0.0.1\n    internal_port: 9\n", freeLoopbackPort(t)))
	b, err := os.ReadFile(tg.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	hand := strings.Replace(string(b), "rules:\n", fmt.Sprintf("rules:\n  # added by hand\n  - name: by-hand\n    external_port: %d\n    internal_ip: 127.0.0.1\n", freeLoopbackPort(t)), 1)
	if err := os.WriteFile(tg.cfgPath, []byte(hand), 0o600); err != nil {
		t.Fatal(err)
	}
	envWith := map[string]string{"CAMGATE_TOKEN": tg.token}
	code, _, errs := runCLI(t, envWith, "rule", "disable", "cam", "--config", tg.cfgPath)
	if code != 1 || !strings.Contains(errs, "409") || !strings.Contains(errs, "camgate.yaml changed on disk: reload it first") {
		t.Fatalf("got exit %d, stderr %q; want 1 and 409 camgate.yaml changed on disk: reload it first", code, errs)
	}
	if after, _ := os.ReadFile(tg.cfgPath); string(after) != hand {
		t.Fatalf("the hand edit was overwritten:\n%s", after)
	}
	if tg.g.Addrs("cam") == nil {
		t.Fatal("the refused change was applied")
	}
	// After a reload the same change goes through and keeps the edit.
	if _, err := tg.s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI(t, envWith, "rule", "disable", "cam", "--config", tg.cfgPath); code != 0 {
		t.Fatalf("after reload: got %d %q %q", code, out, errs)
	}
	after, _ := os.ReadFile(tg.cfgPath)
	if !strings.Contains(string(after), "# added by hand\n  - name: by-hand\n") || !strings.Contains(string(after), "enabled: false") {
		t.Fatalf("after reload and disable, got:\n%s", after)
	}
}

func TestAdminResetPassword(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "version: 1\nrules: []\nstate_dir: state\n")
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("password\n"), 0o600)
	code, _, errs := runCLI(t, nil, "admin", "reset-password", "--config", cfg, "--password-file", pw)
	if code != 1 || !strings.Contains(errs, "too weak") {
		t.Fatalf("weak: got %d %q", code, errs)
	}
	os.WriteFile(pw, []byte("kiwi-lantern-47-grove\r\n"), 0o600)
	code, out, errs := runCLI(t, nil, "admin", "reset-password", "--config", cfg, "--password-file", pw, "--user", "owner")
	if code != 0 || !strings.Contains(out, "Password set") {
		t.Fatalf("reset: got %d %q %q", code, out, errs)
	}
	b, err := os.ReadFile(filepath.Join(dir, "state", admin.AccountFile))
	if err != nil || !strings.Contains(string(b), `"user": "owner"`) || strings.Contains(string(b), "kiwi") {
		t.Fatalf("account file: %v\n%s", err, b)
	}
	// Never from argv.
	if code, _, _ := runCLI(t, nil, "admin", "reset-password", "--config", cfg, "hunter2hunter2"); code != 2 {
		t.Fatalf("password in argv: got exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, nil, "admin", "frob"); code != 2 {
		t.Fatalf("unknown task: got exit %d, want 2", code)
	}
}
