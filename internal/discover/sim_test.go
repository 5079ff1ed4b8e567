package discover_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/discover"
	"github.com/camgate/camgate/internal/netlab"
	"github.com/camgate/camgate/internal/sim"
)

// runSimIn builds a simulated device inside namespace ns (its sockets stay
// there) and serves it until the test ends.
func runSimIn(t *testing.T, l *netlab.Lab, ns string, cfg sim.Config) *sim.Device {
	t.Helper()
	var d *sim.Device
	if err := l.Do(ns, func() (err error) { d, err = sim.New(cfg); return }); err != nil {
		t.Fatalf("sim in %s: %v", ns, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sim: %v", err)
		}
	})
	return d
}

// discoverIn runs Discover with its sockets in namespace ns.
func discoverIn(t *testing.T, l *netlab.Lab, ns string, opts discover.Options) ([]discover.Device, []discover.Progress) {
	t.Helper()
	var devs []discover.Device
	var events []discover.Progress
	opts.Progress = func(p discover.Progress) { events = append(events, p) }
	err := l.Do(ns, func() (err error) {
		devs, err = discover.Discover(context.Background(), opts)
		return err
	})
	if err != nil {
		t.Fatalf("discover in %s: %v", ns, err)
	}
	return devs, events
}

// TestDiscoverSimulator: the simulator in lan (joined to the group on the
// wildcard address, as a device is) is found by SADP and by WS-Discovery,
// from the gateway across the veth and from inside the LAN itself.
func TestDiscoverSimulator(t *testing.T) {
	l := netlab.New(t, netlab.Options{Multicast: true})
	ports := sim.ProfileDefault.Ports()
	ports.RTP = -1
	d := runSimIn(t, l, l.LAN, sim.Config{Ports: ports, MulticastInterfaces: []string{"eth0"}, Password: "Camgate-Test-1"})
	id := d.Identity()

	for _, tt := range []struct {
		ns, iface string
		from      netip.Addr
	}{
		{l.GW, "lan0", netlab.GWLANAddr},
		{l.LAN, "eth0", netlab.LANAddr},
	} {
		t.Run(tt.iface, func(t *testing.T) {
			devs, events := discoverIn(t, l, tt.ns, discover.Options{Interfaces: []string{tt.iface}, Timeout: 1500 * time.Millisecond})
			if len(devs) != 1 {
				t.Fatalf("got %d devices %+v, want the simulator; progress %+v", len(devs), devs, events)
			}
			got := devs[0]
			if !got.HasSource(discover.SourceSADP) || !got.HasSource(discover.SourceWSD) {
				t.Errorf("found by %q, want both sadp and wsd", got.SourceList())
			}
			if !netip.MustParsePrefix("198.19.0.64/29").Contains(got.IP) {
				t.Errorf("IP: got %v, want a lan address", got.IP)
			}
			if got.MAC != id.MAC.String() || got.Model != id.Model || got.Serial != id.SerialNumber || got.Firmware != id.SoftwareVersion() {
				t.Errorf("got %+v, want identity %+v", got, id)
			}
			if got.HTTPPort != 8082 || got.ServerPort != 8000 || got.NotActivated() || got.Activated == nil {
				t.Errorf("got HTTP %d server %d activated %v, want 8082, 8000, true", got.HTTPPort, got.ServerPort, got.Activated)
			}
			if len(got.ONVIF) == 0 {
				t.Errorf("no ONVIF address")
			}
			last := events[len(events)-1]
			if last.Kind != discover.Done || last.Addr != tt.from || last.Replies < 2 {
				t.Errorf("last progress event %+v, want done on %v with at least 2 replies", last, tt.from)
			}
		})
	}
}

// TestDiscoverNotActivated: the "vulnerable" profile reports
// Activated=false and Discover says so.
func TestDiscoverNotActivated(t *testing.T) {
	l := netlab.New(t, netlab.Options{Multicast: true})
	ports := sim.Ports{SADP: discover.SADPPort, WSDiscovery: discover.WSDPort, RTP: -1}
	d := runSimIn(t, l, l.LAN, sim.Config{Profile: sim.ProfileVulnerable, Ports: ports, MulticastInterfaces: []string{"eth0"}})
	devs, _ := discoverIn(t, l, l.GW, discover.Options{Interfaces: []string{"lan0"}, Timeout: time.Second, SkipWSD: true})
	if len(devs) != 1 || !devs[0].NotActivated() || devs[0].Model != d.Identity().Model {
		t.Fatalf("got %s, want the vulnerable DVR flagged not activated", fmt.Sprintf("%+v", devs))
	}
}
