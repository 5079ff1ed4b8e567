package router

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/netlab"
)

// The end-to-end tests run the router client in the lan namespace as a
// separate process: the test binary re-executed under `ip netns exec`
// with driverEnv set. goupnp's HTTP client and go-nat-pmp open sockets on
// goroutines of their own, so running the client in-process on one
// namespaced thread (netlab.Lab.Do) would leak some of them into the
// host's namespace; a whole process in lan behaves exactly like camgate
// on a LAN box. The driver reads one JSON command per line on stdin and
// answers one JSON line on stdout; its log goes to stderr.
const driverEnv = "CAMGATE_ROUTER_TEST_DRIVER"

func TestMain(m *testing.M) {
	if os.Getenv(driverEnv) != "" {
		os.Exit(runDriver(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type driverCmd struct {
	// Op is sync, status, close, renew (make every lease due and run one
	// maintenance pass), probe, leases (dump the internal leases) or exit
	// (leave without Close, as a crash would).
	Op     string `json:"op"`
	Config string `json:"config,omitempty"` // camgate.yaml text for sync and probe
}

type driverReply struct {
	Err    string         `json:"err,omitempty"`
	Status *Status        `json:"status,omitempty"`
	Report *Report        `json:"report,omitempty"`
	Leases map[string]any `json:"leases,omitempty"`
}

func runDriver(in io.Reader, out, logw io.Writer) int {
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := New(Config{Logger: log, StateDir: os.Getenv(driverEnv + "_STATE"), RequestTimeout: time.Second,
		RetryInterval: time.Hour, SyncTimeout: 20 * time.Second})
	ctx := context.Background()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	enc := json.NewEncoder(out)
	for sc.Scan() {
		var cmd driverCmd
		var rep driverReply
		if err := json.Unmarshal(sc.Bytes(), &cmd); err != nil {
			rep.Err = err.Error()
			enc.Encode(rep)
			continue
		}
		var cfg *config.Config
		if cmd.Config != "" {
			var err error
			if cfg, err = config.Load([]byte(cmd.Config)); err != nil {
				rep.Err = "config: " + err.Error()
				enc.Encode(rep)
				continue
			}
		}
		var err error
		switch cmd.Op {
		case "sync":
			err = c.Sync(ctx, cfg)
		case "status":
		case "close":
			err = c.Close(ctx)
		case "renew":
			c.opMu.Lock()
			for _, l := range c.leases {
				l.renewAt, l.retryAt = time.Time{}, time.Time{}
			}
			c.opMu.Unlock()
			c.maintain(ctx)
		case "probe":
			rep.Report, err = c.Probe(ctx, cfg)
		case "leases":
			c.opMu.Lock()
			rep.Leases = map[string]any{"current": len(c.leases), "stale": len(c.stale)}
			c.opMu.Unlock()
		case "exit":
			return 0
		default:
			err = fmt.Errorf("unknown op %q", cmd.Op)
		}
		if err != nil {
			rep.Err = err.Error()
		}
		st := c.Status()
		rep.Status = &st
		enc.Encode(rep)
	}
	return 0
}

// driver is the test side of a driver process in a namespace.
type driver struct {
	t    *testing.T
	proc *netlab.Proc
	in   io.WriteCloser
	out  *bufio.Scanner
}

func startDriver(t *testing.T, l *netlab.Lab, ns, stateDir string) *driver {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := l.Command(ns, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), driverEnv+"=1", driverEnv+"_STATE="+stateDir)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := netlab.StartCmd(cmd)
	if err := p.Err(); err != nil {
		t.Fatalf("start driver: %v", err)
	}
	d := &driver{t: t, proc: p, in: in, out: bufio.NewScanner(outR)}
	d.out.Buffer(make([]byte, 4<<20), 4<<20)
	t.Cleanup(func() {
		in.Close()
		p.Stop()
		if t.Failed() {
			t.Logf("driver log:\n%s", p.Output())
		}
	})
	return d
}

func (d *driver) do(op, cfg string) driverReply {
	d.t.Helper()
	b, _ := json.Marshal(driverCmd{Op: op, Config: cfg})
	if _, err := d.in.Write(append(b, '\n')); err != nil {
		d.t.Fatalf("driver %s: %v\n%s", op, err, d.proc.Output())
	}
	if !d.out.Scan() {
		d.t.Fatalf("driver %s: no answer (%v)\n%s", op, d.out.Err(), d.proc.Output())
	}
	var rep driverReply
	if err := json.Unmarshal(d.out.Bytes(), &rep); err != nil {
		d.t.Fatalf("driver %s: %v: %s", op, err, d.out.Bytes())
	}
	return rep
}

// kill ends the driver without Close, as a crash would.
func (d *driver) kill() {
	d.proc.Cmd.Process.Kill()
	<-d.proc.Exited()
}

// mapping finds a mapping in a status.
func (s *Status) mapping(proto string, port uint16) (Mapping, bool) {
	for _, m := range s.Mappings {
		if m.Protocol == proto && m.ExternalPort == port {
			return m, true
		}
	}
	return Mapping{}, false
}

func (s *Status) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mode=%s protocol=%s gw=%s local=%s ext=%s wan=%s err=%q stale=%d\n", s.Mode, s.Protocol, s.Gateway, s.LocalAddress, s.ExternalIP, s.WAN, s.Error, s.Stale)
	for _, m := range s.Mappings {
		fmt.Fprintf(&b, "  %s %s/%d -> %s:%d %s %q suggested=%d expires=%s\n", m.Rule, m.Protocol, m.ExternalPort, m.InternalAddr, m.InternalPort, m.State, m.Message, m.SuggestedPort, m.Expires.Format(time.TimeOnly))
	}
	return b.String()
}
