package forward

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestExplainListen: each bind failure carries its fix; others pass as
// they are.
func TestExplainListen(t *testing.T) {
	denied := &os.SyscallError{Syscall: "bind", Err: syscall.EACCES}
	inUse := &os.SyscallError{Syscall: "bind", Err: syscall.EADDRINUSE}
	tests := []struct {
		name    string
		network string
		addr    string
		err     error
		fix     []string // in Error()
		webFix  []string // in WebFix(); nil means not explained
	}{
		{"rtsp 554 denied", "tcp", "0.0.0.0:554", denied,
			[]string{"run as root", "setcap cap_net_bind_service=+ep", "the packaged service", "use a port ≥ 1024"},
			[]string{"port 554", "external port of 1024 or more (for example 8554)", "camgate's package"}},
		{"https 443 denied over udp", "udp", "[::]:443", denied,
			[]string{"run as root", "setcap cap_net_bind_service=+ep", "the packaged service", "use a port ≥ 1024"},
			[]string{"port 443", "for example 8443"}},
		{"high port denied is something else", "tcp", "0.0.0.0:8082", denied, nil, nil},
		{"low port in use is not about rights", "tcp", "0.0.0.0:80", inUse, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := explainListen(tt.network, netip.MustParseAddrPort(tt.addr), tt.err)
			if !errors.Is(err, tt.err.(*os.SyscallError).Err) {
				t.Errorf("got %v, want it to wrap %v", err, tt.err)
			}
			var pe *PrivilegedPortError
			if tt.webFix == nil {
				if errors.As(err, &pe) {
					t.Fatalf("got %v, want the error unexplained", err)
				}
				return
			}
			if !errors.As(err, &pe) {
				t.Fatalf("got %T %v, want a *PrivilegedPortError", err, err)
			}
			for _, want := range tt.fix {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Error() = %q, want it to say %q", err, want)
				}
			}
			for _, want := range tt.webFix {
				if !strings.Contains(pe.WebFix(), want) {
					t.Errorf("WebFix() = %q, want it to say %q", pe.WebFix(), want)
				}
			}
			if w := pe.WebFix(); strings.Contains(w, "setcap") || strings.Contains(w, "--") {
				t.Errorf("WebFix() = %q, want no command line in the UI's fix", w)
			}
		})
	}
}

// TestPrivilegedBindAsNobody binds a port below 1024 for real, in a copy
// of this test binary run as the unprivileged user nobody, and checks
// that the error says how to fix it.
func TestPrivilegedBindAsNobody(t *testing.T) {
	if os.Getenv("CAMGATE_BIND_HELPER") != "" {
		port, _ := strconv.Atoi(os.Getenv("CAMGATE_BIND_HELPER"))
		ln, err := listenTCP(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)))
		if err == nil {
			ln.Close()
			os.Stdout.WriteString("bound")
			return
		}
		os.Stdout.WriteString(err.Error())
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a copy of itself as nobody (run scripts/test.sh as root)")
	}
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	start, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || start <= 1 {
		t.Skipf("every port is unprivileged here (ip_unprivileged_port_start %q)", b)
	}
	// Port 1 (tcpmux): the bind is refused before it could take anything.
	dir, err := os.MkdirTemp("", "camgate-bind-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "forward.test")
	src, _ := os.Open(os.Args[0])
	dst, _ := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	io.Copy(dst, src)
	src.Close()
	dst.Close()
	cmd := exec.Command(bin, "-test.run=^TestPrivilegedBindAsNobody$")
	cmd.Env = append(os.Environ(), "CAMGATE_BIND_HELPER=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as nobody: %v\n%s", err, out)
	}
	for _, want := range []string{"permission denied", "run as root", "setcap cap_net_bind_service=+ep", "the packaged service", "use a port ≥ 1024"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("as nobody, binding port 1 said %q; want it to say %q", out, want)
		}
	}
}
