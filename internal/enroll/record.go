package enroll

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/hikvision"
)

// LastLogins is how many failed logins enrolling leaves to the device's
// lockout: with this few left it stops unless forced (issue 14).
const LastLogins = 2

// CheckLoginsLeft asks the device, without credentials, whether it locks
// this address or would after LastLogins more failures, and stops then.
func CheckLoginsLeft(ctx context.Context, out io.Writer, c *hikvision.Client, force bool) error {
	pr, err := c.Probe(ctx)
	if err != nil {
		return nil // the login that follows reports an unreachable device
	}
	switch {
	case pr.Locked:
		return fmt.Errorf("the device is locking this address out (too many failed logins); wait for the lock to run out (30 minutes on Hikvision) or reboot the device, then run device add again")
	case pr.LoginsLeft >= 0 && pr.LoginsLeft <= LastLogins && !force:
		return fmt.Errorf("the device takes only %d more failed login(s) from this address before it locks it out; "+
			"camgate stops here so that a wrong password cannot lock it: check the password file and run again with --force, "+
			"or log in once successfully (which resets the count)", pr.LoginsLeft)
	case pr.LoginsLeft >= 0 && pr.LoginsLeft <= LastLogins:
		fmt.Fprintf(out, "WARNING: the device takes only %d more failed login(s) from this address; logging in anyway (--force).\n", pr.LoginsLeft)
	}
	return nil
}

// Record adds (or updates) the device in the devices section and
// points the plan's rules at it, so that the guard, check and audit know
// which device and which stored password the rules belong to.
func Record(cfg *config.Config, plan *hikvision.Plan, addr, user string, info hikvision.DeviceInfo, ports hikvision.Ports) error {
	d := cfg.DeviceOf(&config.Rule{InternalIP: addr})
	if d == nil {
		if other := cfg.Device(plan.Name); other != nil {
			return fmt.Errorf("the devices section already has a device %q at %s; pick another --name", plan.Name, other.Address)
		}
		cfg.Devices = append(cfg.Devices, config.Device{Name: plan.Name, Address: addr})
		d = &cfg.Devices[len(cfg.Devices)-1]
	} else {
		plan.Name = d.Name // the rules point at the entry that exists
	}
	if user != config.DefaultDeviceUser {
		d.User = user
	}
	if p := ports.Enabled(hikvision.ProtoHTTP); p != 0 {
		d.HTTPPort = p
	}
	if p := ports.Enabled(hikvision.ProtoRTSP); p != 0 {
		d.RTSPPort = p
	}
	if p := ports.Enabled(hikvision.ProtoHTTPS); p != 0 {
		d.HTTPSPort = p
	}
	if info.Model != "" {
		d.Model = info.Model
	}
	if fw := strings.TrimSpace(info.FirmwareVersion + " " + info.FirmwareReleasedDate); fw != "" {
		d.Firmware = fw
	}
	for i := range plan.Rules {
		plan.Rules[i].Device = d.Name
	}
	return nil
}
