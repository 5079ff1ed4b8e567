package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/adminclient"
	"github.com/camgate/camgate/internal/check"
	"github.com/camgate/camgate/internal/netlab"
)

// TestAdminUIInChromium drives the admin UI in real Chromium through
// web/e2e.mjs (playwright-core): first-run setup with the token from the
// log, login, adding a TCP rule to a device on loopback, traffic through
// it (checked here with curl), the dashboard's byte counters, cutting a
// connection, disabling the rule (curl is refused), and `camgate rule list`
// through the API with a token created in the UI. The rule's Test button
// shows the gateway layer ✓ while it runs (✗ once disabled, on a phone-sized
// screen), and the token runs the same check through the API. The rule's
// form turns on the guard (brute-force guard, exploit filter, after an
// inline problem naming the protocol field); its indicator then shows it,
// an exploit request sent here with curl gets 403 without reaching the
// device, and the dashboard counts it. Screenshots of every page land in
// artifacts/admin-e2e/.
func TestAdminUIInChromium(t *testing.T) {
	bt := needBrowser(t)
	bin := bt.bin
	need(t, "curl")

	// The "device": a web page on loopback, big enough to show on the
	// dashboard.
	page := strings.Repeat("camgate test DVR page\n", 2000)
	dev, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The device's request log shows what the guard let through.
	var devMu sync.Mutex
	var devSeen []string
	devSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		devMu.Lock()
		devSeen = append(devSeen, r.Method+" "+r.URL.Path)
		devMu.Unlock()
		io.WriteString(w, page)
	}), ReadHeaderTimeout: 5 * time.Second}
	go devSrv.Serve(dev)
	defer devSrv.Close()
	devPort := dev.Addr().(*net.TCPAddr).Port
	rulePort := freeTCPPort(t)

	dir := t.TempDir()
	cfgPath := writeConfig(t, dir, `# Shop gateway. Installer: Sam, 555-0100.
version: 1
listen_address: 127.0.0.1 # loopback only in this test
rules: []
admin:
  listen: "https://127.0.0.1:0"
`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gw := netlab.StartCmd(exec.CommandContext(ctx, bin, "serve", "--config", cfgPath))
	defer gw.Stop()
	if !gw.WaitFor("setup_url=", 15*time.Second) {
		t.Fatalf("camgate did not print a setup URL:\n%s", gw.Output())
	}
	m := regexp.MustCompile(`setup_url="?([^"\s]+)`).FindStringSubmatch(gw.Output())
	if m == nil {
		t.Fatalf("no setup URL in:\n%s", gw.Output())
	}
	setupURL := m[1]
	// The admin listener's real address, for `camgate rule` below.
	u := regexp.MustCompile(`url=https://(127\.0\.0\.1:\d+)`).FindStringSubmatch(gw.Output())
	if u == nil {
		t.Fatalf("no admin URL in:\n%s", gw.Output())
	}

	artifacts, _ := filepath.Abs(filepath.Join("..", "..", "artifacts", "admin-e2e"))
	os.RemoveAll(artifacts)
	cmd, stdin, stdout, stderr := bt.run(ctx, t, "e2e.mjs",
		"CAMGATE_SETUP_URL="+setupURL,
		"RULE_PORT="+strconv.Itoa(rulePort),
		"TARGET_IP=127.0.0.1",
		"TARGET_PORT="+strconv.Itoa(devPort),
		"ARTIFACTS="+artifacts,
	)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format, args...)
		fmt.Fprintf(stdin, "fail %s\n", fmt.Sprintf(format, args...))
	}
	ok := func() { io.WriteString(stdin, "ok\n") }
	ruleURL := fmt.Sprintf("http://127.0.0.1:%d/", rulePort)
	var held net.Conn
	defer func() {
		if held != nil {
			held.Close()
		}
	}()
	var token string
	done := false
	var stopLoad, loadDone chan struct{}
	defer func() {
		if stopLoad != nil {
			select {
			case <-stopLoad:
			default:
				close(stopLoad)
			}
		}
	}()

	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		t.Logf("e2e: %s", line)
		switch {
		case line == "CHECK flows dvr-web":
			out, err := exec.CommandContext(ctx, "curl", "-sS", "--fail", "--max-time", "5", ruleURL).Output()
			if err != nil || string(out) != page {
				fail("curl through the new rule: %v (%d bytes)", err, len(out))
				continue
			}
			// Keep traffic flowing while the dashboard draws its graph,
			// until the connection is cut below.
			stopLoad = make(chan struct{})
			loadDone = make(chan struct{})
			go func() {
				defer close(loadDone)
				hc := &http.Client{Timeout: 5 * time.Second}
				for {
					select {
					case <-stopLoad:
						return
					case <-time.After(150 * time.Millisecond):
					}
					if resp, err := hc.Get(ruleURL); err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
			}()
			// Hold a connection open for the Connections page.
			held, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", rulePort), 3*time.Second)
			if err != nil {
				fail("dial the rule: %v", err)
				continue
			}
			fmt.Fprintf(held, "GET / HTTP/1.1\r\nHost: dvr\r\n\r\n")
			ok()
		case line == "CHECK cut dvr-web":
			close(stopLoad)
			<-loadDone
			held.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := io.Copy(io.Discard, held)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				fail("the held connection was not cut by Disconnect")
				continue
			}
			ok()
		case line == "CHECK guard dvr-web":
			// The rule now has the exploit filter: CVE-2021-36260's
			// request is refused by camgate, a page still loads.
			code, err := exec.CommandContext(ctx, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
				"-X", "PUT", "-H", "Content-Type: application/xml", "--data", "<language>$(id)</language>", ruleURL+"SDK/webLanguage").Output()
			if err != nil || string(code) != "403" {
				fail("the CVE-2021-36260 request through the guard: got %q, %v, want 403", code, err)
				continue
			}
			out, err := exec.CommandContext(ctx, "curl", "-sS", "--fail", "--max-time", "5", ruleURL).Output()
			if err != nil || string(out) != page {
				fail("a page through the guard: %v (%d bytes)", err, len(out))
				continue
			}
			devMu.Lock()
			seen := slices.Clone(devSeen)
			devMu.Unlock()
			if slices.ContainsFunc(seen, func(s string) bool { return strings.Contains(s, "/SDK/") }) {
				fail("the exploit reached the device: it saw %q", seen)
				continue
			}
			ok()
		case line == "CHECK refused dvr-web":
			err := exec.CommandContext(ctx, "curl", "-sS", "--fail", "--max-time", "5", ruleURL).Run()
			var ee *exec.ExitError
			// curl exit 7: failed to connect (connection refused).
			if !errors.As(err, &ee) || ee.ExitCode() != 7 {
				fail("curl after disabling: got %v, want connection refused (exit 7)", err)
				continue
			}
			ok()
		case line == "CHECK hand-edit camgate.yaml":
			f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
			if err == nil {
				_, err = io.WriteString(f, "# edited by hand while the UI was open\n")
				f.Close()
			}
			if err != nil {
				fail("hand edit: %v", err)
				continue
			}
			ok()
		case line == "CHECK hand-edit kept":
			if b, _ := os.ReadFile(cfgPath); !strings.Contains(string(b), "# edited by hand while the UI was open\n") {
				fail("the hand edit was lost:\n%s", b)
				continue
			}
			ok()
		case strings.HasPrefix(line, "TOKEN "):
			token = strings.TrimPrefix(line, "TOKEN ")
		case line == "CHECK cli dvr-web":
			// CLI parity: `camgate rule list` finds the running gateway
			// from the config and uses the API with the token.
			cliCfg := writeConfig(t, t.TempDir(), fmt.Sprintf("version: 1\nstate_dir: %s\nrules: []\nadmin:\n  listen: \"https://%s\"\n",
				filepath.Join(dir, "camgate-state"), u[1]))
			c := exec.CommandContext(ctx, bin, "rule", "list", "--config", cliCfg)
			c.Env = append(os.Environ(), "CAMGATE_TOKEN="+token)
			out, err := c.CombinedOutput()
			if err != nil || !regexp.MustCompile(`dvr-web\s+DVR web page\s+\d+\s+127\.0\.0\.1\s+\d+\s+tcp\s+no`).Match(out) {
				fail("camgate rule list through the API: %v\n%s", err, out)
				continue
			}
			ok()
		case line == "CHECK api-check dvr-web":
			// A script's rule check: the token from the UI, no body, the
			// gateway's own certificate. The rule is disabled by now.
			rep, err := apiCheck(ctx, filepath.Join(dir, "camgate-state", "admin-cert.pem"), u[1], token, "dvr-web")
			if err != nil {
				fail("rule check through the API: %v", err)
				continue
			}
			got := map[check.Layer]check.Status{}
			var gwReason string
			for _, res := range rep.Rules[0].Results {
				got[res.Layer] = res.Status
				if res.Layer == check.LayerGateway {
					gwReason = res.Reason
				}
			}
			if got[check.LayerGateway] != check.Fail || !strings.Contains(gwReason, "disabled") || got[check.LayerInside] != check.OK {
				fail("rule check through the API: got %v (gateway: %q), want gateway ✗ (disabled) and inside ✓", got, gwReason)
				continue
			}
			ok()
		case line == "DONE":
			done = true
		}
	}
	stdin.Close()
	err = cmd.Wait()
	if err != nil || !done {
		t.Fatalf("web/e2e.mjs: %v\n%s\ncamgate log:\n%s", err, stderr.String(), gw.Output())
	}
	t.Logf("screenshots in %s", artifacts)

	// Each rule check is in the audit log: three from the UI, one by the
	// token.
	audit, _ := os.ReadFile(filepath.Join(dir, "camgate-state", "audit.log"))
	var checks []string
	for _, l := range strings.Split(string(audit), "\n") {
		var a struct{ Who, Action, Target string }
		if json.Unmarshal([]byte(l), &a) == nil && a.Action == "rule.check" {
			checks = append(checks, a.Who+" "+a.Target)
		}
	}
	if want := []string{"owner dvr-web", "owner dvr-web", "token:cli dvr-web", "owner dvr-web"}; !slices.Equal(checks, want) {
		t.Errorf("rule checks in the audit log: got %q, want %q", checks, want)
	}

	// The file the UI changed is what a restart would run, guard
	// included, and the owner's comments are still in it.
	b, _ := os.ReadFile(cfgPath)
	for _, want := range []string{"name: dvr-web", "enabled: false", "auth: true", "hikvision: true", "service: http", "127.0.0.0/8",
		"# Shop gateway. Installer: Sam, 555-0100.\n", "listen_address: 127.0.0.1 # loopback only in this test\n"} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("config file after the UI session lacks %q:\n%s", want, b)
		}
	}
}

// apiCheck runs POST /api/v1/rules/{rule}/check on the gateway at addr
// with a bearer token, trusting exactly the certificate in certPath.
func apiCheck(ctx context.Context, certPath, addr, token, rule string) (*check.Report, error) {
	tc, err := adminclient.PinnedTLS(certPath)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, "POST", "https://"+addr+"/api/v1/rules/"+rule+"/check", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("got %d %s, want 200", resp.StatusCode, body)
	}
	var rep check.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		return nil, fmt.Errorf("report %s: %w", body, err)
	}
	if len(rep.Rules) != 1 || rep.Rules[0].Rule != rule {
		return nil, fmt.Errorf("got report %s, want rule %s only", body, rule)
	}
	return &rep, nil
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
