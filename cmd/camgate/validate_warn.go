package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/camgate/camgate/internal/config"
)

// capNetBindService is CAP_NET_BIND_SERVICE's bit in /proc/self/status's
// CapEff mask (linux/capability.h).
const capNetBindService = 10

// bindRight finds out whether this process may listen below 1024: root,
// CAP_NET_BIND_SERVICE in its effective set, or a lowered
// net.ipv4.ip_unprivileged_port_start.
func bindRight() config.BindRight {
	r := config.BindRight{Start: 1024, Who: "uid " + strconv.Itoa(os.Geteuid())}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 0 && n <= 65535 {
			r.Start = uint16(n)
		}
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return r
	}
	r.Known = true
	r.Allowed = os.Geteuid() == 0 || capEffHas(string(status), capNetBindService)
	return r
}

// capEffHas reports whether the CapEff line of a /proc/<pid>/status text
// has capability bit.
func capEffHas(status string, bit uint) bool {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<bit) != 0
		}
	}
	return false
}

// printWarnings prints validate's warnings, each with its file location.
func printWarnings(w io.Writer, path string, ws []config.Problem) {
	for _, p := range ws {
		loc := path
		if p.Line > 0 {
			loc = fmt.Sprintf("%s:%d", path, p.Line)
			p.Line = 0
		}
		fmt.Fprintf(w, "%s: warning: %s\n", loc, p.Error())
	}
}
