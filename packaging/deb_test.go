package packaging

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	unitPath = "/usr/lib/systemd/system/camgate.service"
	confPath = "/etc/camgate/camgate.yaml"
	stateDir = "/var/lib/camgate"
)

// buildDeb runs scripts/package.sh for amd64 with the given version into
// dir and returns the package's path.
func buildDeb(t *testing.T, version, dir string) string {
	t.Helper()
	cmd := exec.Command("scripts/package.sh", "amd64")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "VERSION="+version, "OUT="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/package.sh: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "camgate_"+version+"_amd64.deb"))
	if len(debs) != 1 {
		t.Fatalf("scripts/package.sh made %v in %s, want one camgate_%s_amd64.deb", debs, dir, version)
	}
	return debs[0]
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// asService runs camgate as the service's user, the way the unit does.
func asService(args ...string) *exec.Cmd {
	return exec.Command("setpriv", append([]string{"--reuid=camgate", "--regid=camgate", "--init-groups", "--", "/usr/bin/camgate"}, args...)...)
}

// TestDebInstallUpgradePurge installs the amd64 package on this machine,
// checks every file's owner and mode, the conffile, the unit (systemd-
// analyze verify and security), validates the starter as the service
// user, runs the gateway as that user, upgrades the package under it,
// checks that the config, the state and the bans are kept, and purges.
func TestDebInstallUpgradePurge(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two packages and installs them")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: installs the package with dpkg on this machine (run scripts/test.sh as root)")
	}
	for _, tool := range []string{"dpkg", "dpkg-query", "setpriv", "systemd-analyze", "useradd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: %v", tool, err)
		}
	}
	if err := exec.Command("dpkg-query", "-W", "camgate").Run(); err == nil {
		t.Skip("a camgate package is already installed here; this test installs and purges its own")
	}
	_, err := user.Lookup("camgate")
	userExisted := err == nil

	dir := t.TempDir()
	v1 := buildDeb(t, "1.0.0", filepath.Join(dir, "v1"))
	v2 := buildDeb(t, "1.0.1", filepath.Join(dir, "v2"))

	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "--purge", "camgate").CombinedOutput(); err != nil {
			t.Errorf("cleanup: dpkg --purge camgate: %v\n%s", err, out)
		}
		if !userExisted {
			exec.Command("userdel", "camgate").Run()
			exec.Command("groupdel", "camgate").Run()
		}
	})

	out := run(t, "dpkg", "-i", v1)
	for _, want := range []string{"journalctl -u camgate -g setup_url", "No password is set"} {
		if !strings.Contains(out, want) {
			t.Errorf("the post-install message lacks %q:\n%s", want, out)
		}
	}
	checkFiles(t)
	checkUnit(t)

	// The starter is valid for the service user, who can read it.
	vout, err := asService("validate", "--config", confPath).CombinedOutput()
	if err != nil || !strings.Contains(string(vout), "OK (4 rules, 0 enabled)") {
		t.Fatalf("camgate validate as the service user: %v\n%s", err, vout)
	}

	// The owner edits the config (admin UI on loopback, a DVR address),
	// and the guard has banned someone.
	conf, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatal(err)
	}
	conf = bytes.ReplaceAll(conf, []byte("192.168.1.64"), []byte("192.168.1.70"))
	conf = append(conf, "\nadmin:\n  listen: 127.0.0.1:0\n"...)
	if err := os.WriteFile(confPath, conf, 0o640); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	bans := fmt.Sprintf(`{"version": 1, "bans": [{"source": "198.18.0.11/32", "rule": "dvr-web", "reason": "4 failed logins within 10m0s", "since": %q, "until": %q}]}`,
		now.Format(time.RFC3339), now.Add(24*time.Hour).Format(time.RFC3339))
	if err := os.WriteFile(filepath.Join(stateDir, "bans.json"), []byte(bans), 0o600); err != nil {
		t.Fatal(err)
	}
	u, _ := user.Lookup("camgate")
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	os.Chown(filepath.Join(stateDir, "bans.json"), uid, gid)

	// A running gateway, as the service user, then the upgrade under it.
	g1 := startGateway(t)
	if v := g1.version(t); v != "1.0.0" {
		t.Errorf("running gateway says version %q, want 1.0.0", v)
	}
	stateBefore := hashTree(t, stateDir)
	out = run(t, "dpkg", "-i", v2)
	if strings.Contains(out, "No password is set") {
		t.Errorf("an upgrade repeats the first-install message:\n%s", out)
	}
	if after, _ := os.ReadFile(confPath); !bytes.Equal(after, conf) {
		t.Errorf("the upgrade changed %s:\n%s\nwant the owner's edit kept:\n%s", confPath, after, conf)
	}
	for name, sum := range stateBefore {
		if got := hashTree(t, stateDir)[name]; got != sum {
			t.Errorf("the upgrade changed or removed %s/%s", stateDir, name)
		}
	}
	checkFiles(t)
	g1.stop(t) // what systemctl try-restart does under systemd
	g2 := startGateway(t)
	if v := g2.version(t); v != "1.0.1" {
		t.Errorf("after the upgrade the gateway says version %q, want 1.0.1", v)
	}
	g2.stop(t)
	bout, err := asService("ban", "list", "--config", confPath).CombinedOutput()
	if err != nil || !strings.Contains(string(bout), "198.18.0.11") {
		t.Errorf("the ban did not survive the upgrade: %v\n%s", err, bout)
	}

	run(t, "dpkg", "--purge", "camgate")
	for _, p := range []string{"/usr/bin/camgate", unitPath, "/etc/camgate", stateDir, "/usr/share/doc/camgate"} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("after purge %s is still there (%v)", p, err)
		}
	}
}

// checkFiles checks owners and modes of what the package installs.
func checkFiles(t *testing.T) {
	t.Helper()
	tests := []struct {
		path, owner, group string
		mode               fs.FileMode
	}{
		{"/usr/bin/camgate", "root", "root", 0o755},
		{unitPath, "root", "root", 0o644},
		{"/etc/camgate", "root", "camgate", fs.ModeDir | 0o770},
		{stateDir, "camgate", "camgate", fs.ModeDir | 0o700},
		{"/usr/share/doc/camgate/INSTALL.md", "root", "root", 0o644},
		{"/usr/share/doc/camgate/examples/kernel-path.conf", "root", "root", 0o644},
	}
	for _, tt := range tests {
		fi, err := os.Stat(tt.path)
		if err != nil {
			t.Errorf("%s: %v", tt.path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		owner, _ := user.LookupId(strconv.Itoa(int(st.Uid)))
		group, _ := user.LookupGroupId(strconv.Itoa(int(st.Gid)))
		if owner == nil || group == nil || owner.Username != tt.owner || group.Name != tt.group || fi.Mode() != tt.mode {
			t.Errorf("%s: got %v %d:%d, want %v %s:%s", tt.path, fi.Mode(), st.Uid, st.Gid, tt.mode, tt.owner, tt.group)
		}
	}
	// The config: the service user's (the UI saves it), not world-readable.
	fi, err := os.Stat(confPath)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if owner, _ := user.LookupId(strconv.Itoa(int(st.Uid))); owner == nil || owner.Username != "camgate" || fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("%s: got %v uid %d, want owned by camgate and not world-readable", confPath, fi.Mode(), st.Uid)
	}
	conffiles := run(t, "dpkg-query", "-W", "-f=${Conffiles}", "camgate")
	if !strings.Contains(conffiles, confPath) {
		t.Errorf("dpkg's conffiles are %q, want %s among them", conffiles, confPath)
	}
}

// checkUnit runs systemd-analyze verify and security on the installed unit.
func checkUnit(t *testing.T) {
	t.Helper()
	out, err := exec.Command("systemd-analyze", "verify", unitPath).CombinedOutput()
	if err != nil || strings.Contains(string(out), "camgate.service:") {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitPath, err, out)
	}
	out, _ = exec.Command("systemd-analyze", "security", "--offline=yes", unitPath).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for camgate.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security gave no score:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %.1f", score)
	if score > 2.0 {
		t.Errorf("exposure %.1f, want at most 2.0 (docs/INSTALL.md records 1.7)", score)
	}
}

// gatewayProc is `camgate serve` from the installed package, run as the
// service user.
type gatewayProc struct {
	cmd *exec.Cmd
	url string
}

func startGateway(t *testing.T) *gatewayProc {
	t.Helper()
	cmd := asService("serve", "--config", confPath)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := &gatewayProc{cmd: cmd}
	t.Cleanup(func() { g.stop(t) })
	urls := make(chan string, 1)
	go func() { // ends when the process closes stderr
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`msg="admin UI and API listening".* url=(\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
	}()
	select {
	case g.url = <-urls:
	case <-time.After(20 * time.Second):
		t.Fatal("camgate serve did not start its admin UI within 20s")
	}
	return g
}

// version reads /healthz (no login) and the version from --version of the
// installed binary, since /healthz deliberately does not say it.
func (g *gatewayProc) version(t *testing.T) string {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Get(g.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("/healthz: got %d %q, want 200 ok", resp.StatusCode, body)
	}
	out, err := exec.Command("/usr/bin/camgate", "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Version string }
	json.Unmarshal(out, &v)
	return v.Version
}

func (g *gatewayProc) stop(t *testing.T) {
	if g.cmd.ProcessState != nil {
		return
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- g.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("camgate serve exited with %v on SIGTERM, want a clean exit", err)
		}
	case <-ctx.Done():
		g.cmd.Process.Kill()
		<-done
		t.Error("camgate serve did not stop within 15s of SIGTERM")
	}
}

// hashTree returns the sha256 of every regular file under dir, by path.
func hashTree(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil {
			rel, _ := filepath.Rel(dir, p)
			out[rel] = sha256.Sum256(b)
		}
		return nil
	})
	return out
}
