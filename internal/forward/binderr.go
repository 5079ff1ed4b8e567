package forward

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
)

// PrivilegedPortError is a listen refused because the port is below 1024
// (below net.ipv4.ip_unprivileged_port_start) and the process has neither
// root nor CAP_NET_BIND_SERVICE. Its text says the ways out; WebFix says
// them for the admin UI, where a command line is no help.
type PrivilegedPortError struct {
	Network string // "tcp" or "udp"
	Addr    netip.AddrPort
	Err     error
}

func (e *PrivilegedPortError) Error() string {
	bin, err := os.Executable()
	if err != nil {
		bin = "camgate"
	}
	return fmt.Sprintf("%v: ports below 1024 need a right this process lacks: run as root, grant it with `sudo setcap cap_net_bind_service=+ep %s`, run the packaged service (which has it), or use a port ≥ 1024",
		e.Err, bin)
}

func (e *PrivilegedPortError) Unwrap() error { return e.Err }

// WebFix is the fix in the admin UI's terms.
func (e *PrivilegedPortError) WebFix() string {
	return fmt.Sprintf("camgate may not listen on port %d: ports below 1024 need a right this camgate was not started with. "+
		"Give the rule an external port of 1024 or more (for example %d), or ask whoever runs this gateway to install camgate's package, whose service has that right",
		e.Addr.Port(), suggestPort(e.Addr.Port()))
}

// suggestPort proposes an unprivileged port for a privileged one, the way
// the usual alternates go: 443 → 8443, 554 → 8554, 80 → 8080.
func suggestPort(p uint16) uint16 { return 8000 + p%1000 }

// explainListen wraps a listen error on a port below 1024 that was refused
// for want of the right to bind it.
func explainListen(network string, addr netip.AddrPort, err error) error {
	if err != nil && addr.Port() < 1024 && errors.Is(err, syscall.EACCES) {
		return &PrivilegedPortError{Network: network, Addr: addr, Err: err}
	}
	return err
}
