package portowner

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

func TestParseProcNet(t *testing.T) {
	tests := []struct {
		file string
		want []Socket
	}{
		{"proc-net-tcp.txt", []Socket{
			{netip.MustParseAddr("0.0.0.0"), 2024, StateListen, 1678},
			{netip.MustParseAddr("127.0.0.1"), 15501, StateListen, 58424},
			{netip.MustParseAddr("198.19.0.65"), 8082, StateListen, 70001},
			{netip.MustParseAddr("127.0.0.1"), 15501, 0x01, 70002},
		}},
		{"proc-net-tcp6.txt", []Socket{
			{netip.MustParseAddr("::"), 15001, StateListen, 61901},
			{netip.MustParseAddr("::1"), 22, StateListen, 61902},
			{netip.MustParseAddr("127.0.0.1"), 8080, StateListen, 61903},
		}},
		{"proc-net-udp.txt", []Socket{
			{netip.MustParseAddr("127.0.0.1"), 34859, 0x01, 4049406},
			{netip.MustParseAddr("0.0.0.0"), 20000, StateClose, 80001},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseProcNet(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d sockets %+v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("socket %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func FuzzParseProcNet(f *testing.F) {
	files, _ := filepath.Glob("testdata/proc-net-*.txt")
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		socks, err := ParseProcNet(data)
		if err != nil {
			return
		}
		for _, s := range socks {
			if !s.Addr.IsValid() {
				t.Fatalf("invalid address in %+v without an error", s)
			}
		}
	})
}

// TestCheckNamesTheHolder: a port held by another process (a child
// python3 or nc here, a real program with its own pid) is refused naming
// it; a port this process holds is not "another process".
func TestCheckNamesTheHolder(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	lo := netip.MustParseAddr("127.0.0.1")
	if err := Check("tcp", lo, port); err != nil {
		t.Fatalf("own listener: got %v, want nil", err)
	}
	// Hand the listening socket to a child process, then close ours:
	// the child holds the port alone.
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "30")
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	f.Close()
	ln.Close()
	err = Check("tcp", lo, port)
	var iu *InUseError
	if !errors.As(err, &iu) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("got %v, want an InUseError wrapping EADDRINUSE", err)
	}
	want := fmt.Sprintf("port already in use: held by sleep (pid %d)", cmd.Process.Pid)
	if os.Geteuid() == 0 && err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
	// The wildcard address overlaps; another port does not.
	if err := Check("tcp", netip.IPv4Unspecified(), port); err == nil {
		t.Fatal("0.0.0.0: got nil, want the holder")
	}
	if err := Check("udp", lo, port); err != nil {
		t.Fatalf("udp: got %v, want nil", err)
	}
}
