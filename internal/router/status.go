package router

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Protocol names how camgate talks to the router.
type Protocol string

// The protocols, in the order auto mode tries them.
const (
	ProtoPCP      Protocol = "pcp"
	ProtoNATPMP   Protocol = "natpmp"
	ProtoUPnPIGD2 Protocol = "upnp-igd2"
	ProtoUPnPIGD1 Protocol = "upnp-igd1"
)

// State is what the router made of one mapping.
type State string

// Mapping states.
const (
	// StatePending: not asked yet (the router stopped answering, or the
	// sync ran out of time); Run retries.
	StatePending State = "pending"
	// StateMapped: the router forwards the port to this host.
	StateMapped State = "mapped"
	// StateConflict: the external port is held by another host (UPnP
	// error 718, or NAT-PMP/PCP gave a different port). SuggestedPort
	// names a free one when camgate could find it.
	StateConflict State = "conflict"
	// StateRefused: the router's policy forbids the mapping (UPnP 606,
	// PCP NOT_AUTHORIZED, NAT-PMP "refused", no room left).
	StateRefused State = "refused"
	// StateUnsupported: the router does not offer what was asked
	// (e.g. UPnP 725 handled, but 726/727 wildcard-only routers).
	StateUnsupported State = "unsupported"
	// StateError: anything else: timeouts, malformed answers, SOAP
	// faults without a known code.
	StateError State = "error"
)

// WANClass is the verdict on the router's WAN (external) address.
type WANClass string

// WAN verdicts.
const (
	WANUnknown WANClass = "unknown" // no address known
	WANPublic  WANClass = "public"  // reachable from the internet, as far as camgate can tell
	WANCGNAT   WANClass = "cgnat"   // 100.64.0.0/10: the ISP's carrier-grade NAT
	WANPrivate WANClass = "private" // RFC 1918 or another non-internet range: a router in front of this one
)

// Status is a snapshot of router automation, safe to marshal as JSON (the
// admin API serves it as is).
type Status struct {
	// Mode is the configured mode: off, auto, upnp, natpmp or pcp.
	Mode string `json:"mode"`
	// Protocol is the one in use, empty until a router answered.
	Protocol Protocol `json:"protocol,omitempty"`
	// Gateway is the router's LAN address camgate talks to.
	Gateway netip.Addr `json:"gateway,omitzero"`
	// LocalAddress is this host's LAN address that mappings point at.
	LocalAddress netip.Addr `json:"local_address,omitzero"`
	// Device describes the router as it describes itself (UPnP
	// friendly name and model), if it does.
	Device string `json:"device,omitempty"`
	// ControlURL is the UPnP control URL in use.
	ControlURL string `json:"control_url,omitempty"`
	// ExternalIP is the router's WAN address, if known.
	ExternalIP netip.Addr `json:"external_ip,omitzero"`
	// WAN is the verdict on ExternalIP, and Advice says what to do about
	// it when port forwarding cannot work from the internet.
	WAN    WANClass `json:"wan"`
	Advice string   `json:"advice,omitempty"`
	// Error is set when router automation failed as a whole (no router
	// answered); per-mapping problems are in Mappings.
	Error string `json:"error,omitempty"`
	// Updated is when the router last answered or was last tried.
	Updated time.Time `json:"updated,omitzero"`
	// Mappings has one entry per rule, protocol and external port.
	Mappings []Mapping `json:"mappings"`
	// Stale counts mappings from a removed rule or an earlier run that
	// the router has not yet confirmed deleted; camgate keeps trying
	// until they are gone or their lease ran out.
	Stale int `json:"stale,omitempty"`
}

// Mapping is the state of one port mapping.
type Mapping struct {
	Rule         string     `json:"rule"`
	Protocol     string     `json:"protocol"` // tcp or udp
	ExternalPort uint16     `json:"external_port"`
	InternalAddr netip.Addr `json:"internal_address,omitzero"`
	InternalPort uint16     `json:"internal_port"`
	State        State      `json:"state"`
	// Message explains any state but mapped, in words for the user.
	Message string `json:"message,omitempty"`
	// Expires is when the router drops the mapping unless renewed.
	Expires time.Time `json:"expires,omitzero"`
	// SuggestedPort is a free external port, offered on a conflict.
	SuggestedPort uint16 `json:"suggested_port,omitempty"`
}

// Sentinel errors.
var (
	// ErrNoRouter means no router answered the enabled protocols.
	ErrNoRouter = errors.New("no router answered")
	// ErrClosed is returned by Sync after Close.
	ErrClosed = errors.New("router client is closed")
	// errTimeout marks "the router did not answer in time", so that a
	// sync stops asking a router that has gone quiet.
	errTimeout = errors.New("no answer")
)

// mapError is a router's answer to one mapping request, or the failure
// to get one: the state to report, the protocol's code and words for the
// user.
type mapError struct {
	state     State
	code      int // UPnP errorCode, PCP/NAT-PMP result code; 0 if none
	msg       string
	suggested uint16
	err       error // underlying error, if any
}

func (e *mapError) Error() string {
	if e.err != nil && e.msg == "" {
		return e.err.Error()
	}
	if e.err != nil {
		return fmt.Sprintf("%s: %v", e.msg, e.err)
	}
	return e.msg
}

func (e *mapError) Unwrap() error { return e.err }

// asMapError returns err as a *mapError, wrapping other errors as
// StateError.
func asMapError(err error) *mapError {
	var me *mapError
	if errors.As(err, &me) {
		return me
	}
	return &mapError{state: StateError, err: err}
}

// StatusJSON returns Status encoded as JSON, for the admin API.
func (c *Client) StatusJSON() ([]byte, error) { return json.Marshal(c.Status()) }
