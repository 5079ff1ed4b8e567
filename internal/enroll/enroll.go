// Package enroll adds a Hikvision device to camgate: it reads the
// device's identity and ports over ISAPI (after asking it, without
// credentials, how many failed logins it still takes, so a wrong password
// cannot lock it), plans guarded rules for it (package hikvision) and
// records it in the config's devices section. `camgate device add` and
// the admin UI's "Add device" both go through it, so the two cannot
// drift apart.
//
// The package writes nothing: callers store the password (package
// credstore) and apply the config (a file save or package site).
package enroll

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/discover"
	"github.com/camgate/camgate/internal/hikvision"
)

// Target is the device to read and how.
type Target struct {
	// Address is the device's LAN address. Required.
	Address string
	// User is the device user; empty means "admin".
	User string
	// Password is the device password. Empty: nothing is read, the
	// ports are assumed (Assume).
	Password string
	// HTTPS reads ISAPI over HTTPS (self-signed certificates accepted).
	HTTPS bool
	// Port is the ISAPI port; 0 means SADP's HTTP port, else 80 (443
	// with HTTPS).
	Port int
	// Seen is what discovery saw of the device, if it answered.
	Seen *discover.Device
	// Force logs in even when the device takes only LastLogins more
	// failures.
	Force bool
	// Timeout bounds each request; 0 means hikvision.DefaultTimeout.
	Timeout time.Duration
}

func (t *Target) user() string {
	if t.User == "" {
		return config.DefaultDeviceUser
	}
	return t.User
}

// Read reads identity and ports over ISAPI, or, without a password,
// assumes them (SADP's ports where it answered, factory defaults for the
// rest). assumed reports the latter. Progress lines go to out.
func Read(ctx context.Context, out io.Writer, t Target) (info hikvision.DeviceInfo, ports hikvision.Ports, assumed bool, err error) {
	if t.Password == "" {
		return Assume(out, t.Seen, "no password was given, so camgate did not log in to the device")
	}
	scheme, port := "http", t.Port
	if t.HTTPS {
		scheme = "https"
		if port == 0 {
			port = hikvision.DefaultHTTPSPort
		}
	}
	if port == 0 && t.Seen != nil && t.Seen.HTTPPort != 0 {
		port = int(t.Seen.HTTPPort)
	}
	if port == 0 {
		port = hikvision.DefaultHTTPPort
	}
	host := net.JoinHostPort(t.Address, strconv.Itoa(port))
	c, err := hikvision.New(hikvision.Config{
		Scheme: scheme, Host: host, Username: t.user(), Password: t.Password,
		AcceptSelfSigned: true, Timeout: t.Timeout,
	})
	if err != nil {
		return info, nil, false, err
	}
	defer c.Close()
	if err := CheckLoginsLeft(ctx, out, c, t.Force); err != nil {
		return info, nil, false, err
	}
	fmt.Fprintf(out, "reading %s://%s as %q...\n", scheme, host, t.user())
	info, err = c.DeviceInfo(ctx)
	if err != nil {
		return info, nil, false, err // wrong password and lockout stop here, with nothing written
	}
	fmt.Fprintf(out, "  %s %s, serial %s, firmware %s %s\n", cmp.Or(info.DeviceType, "-"), cmp.Or(info.Model, "-"), cmp.Or(info.SerialNumber, "-"),
		cmp.Or(info.FirmwareVersion, "-"), info.FirmwareReleasedDate)
	ports, err = c.AdminAccesses(ctx)
	var se *hikvision.StatusError
	if errors.As(err, &se) {
		_, p, _, aerr := Assume(out, t.Seen, fmt.Sprintf("the device did not give its port list (%v)", err))
		return info, p, true, aerr
	}
	if err != nil {
		return info, nil, false, err
	}
	var list []string
	for _, s := range ports.Sorted() {
		off := ""
		if !s.Enabled {
			off = " (off)"
		}
		list = append(list, fmt.Sprintf("%s %d%s", s.Protocol, s.Port, off))
	}
	fmt.Fprintf(out, "  ports: %s\n", strings.Join(list, ", "))
	return info, ports, false, nil
}

// Assume gives the factory ports, with SADP's HTTP and server ports when
// discovery saw the device, and says so on out.
func Assume(out io.Writer, seen *discover.Device, why string) (hikvision.DeviceInfo, hikvision.Ports, bool, error) {
	ports := hikvision.DefaultPorts()
	var info hikvision.DeviceInfo
	src := "Hikvision's factory ports: HTTP 80, HTTPS 443, RTSP 554, server 8000"
	if seen != nil {
		info.Model, info.SerialNumber = seen.Model, seen.Serial
		if seen.HTTPPort != 0 {
			ports.Set(hikvision.ProtoHTTP, seen.HTTPPort, true)
		}
		if seen.ServerPort != 0 {
			ports.Set(hikvision.ProtoDevManage, seen.ServerPort, true)
		}
		src = fmt.Sprintf("the ports SADP reported (HTTP %s, server %s) and factory defaults for the rest (HTTPS 443, RTSP 554)",
			portOrDash(seen.HTTPPort), portOrDash(seen.ServerPort))
	}
	fmt.Fprintf(out, "NOTE: %s; using %s. Check them on the device (Configuration > Network > Advanced Settings > Port) or give --https-port/--rtsp-port.\n", why, src)
	return info, ports, true, nil
}

// Plan plans guarded rules for the device against cfg's rules and
// records the device in cfg's devices section (Record). cfg's rules are
// not changed: the caller adds plan.Rules.
func Plan(cfg *config.Config, addr, user string, info hikvision.DeviceInfo, ports hikvision.Ports, opts hikvision.PlanOptions) (hikvision.Plan, error) {
	opts.DeviceIP = addr
	plan, err := hikvision.PlanRules(cfg.Rules, info, ports, opts)
	if err != nil {
		return plan, err
	}
	if user == "" {
		user = config.DefaultDeviceUser
	}
	if err := Record(cfg, &plan, addr, user, info, ports); err != nil {
		return plan, err
	}
	return plan, nil
}

// portOrDash spells an unknown (0) port as "-".
func portOrDash(p uint16) string {
	if p == 0 {
		return "-"
	}
	return strconv.Itoa(int(p))
}
