// Package sim is a simulated Hikvision DVR: the device every camgate test
// talks to, and the camera a newcomer sees in `camgate demo`.
//
// One Device serves, on real sockets:
//
//   - ISAPI over HTTP and HTTPS with Digest authentication (RFC 7616, MD5 and
//     SHA-256, realm "IP Camera(NNNNN)"): deviceInfo (GET and PUT),
//     Security/adminAccesses, System/Network/interfaces, Security/userCheck,
//     Security/illegalLoginLock, a login page on "/", and /SDK/webLanguage,
//     which only records that it was hit;
//   - the illegal-login lock: MaxFailedLogins bad attempts from one source
//     IP lock that IP for LockDuration, on every authenticated service;
//   - RTSP (gortsplib) with Digest authentication, TCP-interleaved and UDP
//     transports, serving a looped H.264 test pattern on
//     /Streaming/Channels/N01 (640x360) and /N02 (352x288), and DESCRIBE
//     answers with absolute control URLs carrying the device's own IP:port;
//     the Digest uri must match the request line, whatever host it names;
//   - a minimal ONVIF device and media service on the web port (onvif.go)
//     with WS-UsernameToken authentication, answering with LAN addresses;
//   - the server/SDK port and the SDK-over-TLS port, which accept and hold
//     connections (the proprietary protocol is out of scope);
//   - a WebSocket echo on the WebSocket port;
//   - SADP (UDP 37020) and ONVIF WS-Discovery (UDP 3702) responders, joined
//     to 239.255.255.250 when listening on the wildcard address.
//
// Typical use in a test:
//
//	d, err := sim.New(sim.Config{Listen: netip.MustParseAddr("127.0.0.1"), Password: "pw"})
//	if err != nil { ... }
//	ctx, cancel := context.WithCancel(context.Background())
//	done := make(chan error, 1)
//	go func() { done <- d.Run(ctx) }()
//	defer func() { cancel(); <-done }()
//	url := "http://" + d.Addr(sim.ServiceHTTP).String() + "/ISAPI/System/deviceInfo"
//
// New binds every socket, so the accessors report real addresses (port 0
// picks a free one) before Run starts serving.
//
// Non-goals: the proprietary SDK protocol, SADP and ISAPI write commands
// other than PUT deviceInfo (activation, password reset, firmware update),
// ONVIF beyond finding profiles and stream URIs, recordings and playback,
// audio.
// docs/SIMULATOR.md says what is faithful to a real device and what is not.
package sim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Service names one network service of the device.
type Service string

// The device's services.
const (
	ServiceHTTP        Service = "http"         // TCP: web page and ISAPI
	ServiceHTTPS       Service = "https"        // TCP: the same over TLS
	ServiceRTSP        Service = "rtsp"         // TCP: RTSP control and interleaved media
	ServiceRTP         Service = "rtp"          // UDP: RTP for RTSP over UDP; RTCP is the next port
	ServiceSDK         Service = "sdk"          // TCP: server/SDK port (ISAPI protocol DEV_MANAGE)
	ServiceSDKOverTLS  Service = "sdk-over-tls" // TCP: "Enhanced SDK Service" (SDK_OVER_TLS)
	ServiceWebSocket   Service = "websocket"    // TCP: WebSocket (plugin-free live view); an echo here
	ServiceSADP        Service = "sadp"         // UDP: Hikvision SADP discovery
	ServiceWSDiscovery Service = "wsdiscovery"  // UDP: ONVIF WS-Discovery
)

// Services lists every service, in the order the banner shows them.
func Services() []Service {
	return []Service{ServiceHTTP, ServiceHTTPS, ServiceRTSP, ServiceRTP, ServiceSDK,
		ServiceSDKOverTLS, ServiceWebSocket, ServiceSADP, ServiceWSDiscovery}
}

// udp reports whether the service runs over UDP.
func (s Service) udp() bool {
	return s == ServiceRTP || s == ServiceSADP || s == ServiceWSDiscovery
}

// Ports are the device's service ports. In every field 0 picks a free port
// (Device.Addr reports the one chosen) and -1 turns the service off. The
// zero Ports therefore runs everything on free ports, which is what tests
// want; Profile.Ports gives a real device's ports.
type Ports struct {
	// HTTP serves the login page and ISAPI. The seed guide's DVR: 8082.
	HTTP int
	// HTTPS serves the same over TLS (off when Config.HTTPSEnabled says so). 443.
	HTTPS int
	// RTSP is the RTSP control port. 554.
	RTSP int
	// RTP is the even UDP port the RTSP server sends RTP from; RTCP uses
	// RTP+1. 0 picks a free even pair; -1 leaves only TCP-interleaved
	// transport. Real devices use ephemeral ports here, and no profile
	// fixes it.
	RTP int
	// SDK is the server/SDK port (DEV_MANAGE) used by iVMS and the apps. 8000.
	SDK int
	// SDKOverTLS is the "Enhanced SDK Service" port (SDK_OVER_TLS). 8443.
	SDKOverTLS int
	// WebSocket is the plugin-free live-view port. 7681.
	WebSocket int
	// SADP is the UDP SADP discovery port. 37020.
	SADP int
	// WSDiscovery is the UDP ONVIF WS-Discovery port. 3702.
	WSDiscovery int
}

// Port returns the configured port of service s.
func (p Ports) Port(s Service) int {
	if f := p.field(s); f != nil {
		return *f
	}
	return -1
}

// SetPort sets the port of service s.
func (p *Ports) SetPort(s Service, port int) {
	if f := p.field(s); f != nil {
		*f = port
	}
}

// field maps a service to its port field, or nil for an unknown service.
func (p *Ports) field(s Service) *int {
	switch s {
	case ServiceHTTP:
		return &p.HTTP
	case ServiceHTTPS:
		return &p.HTTPS
	case ServiceRTSP:
		return &p.RTSP
	case ServiceRTP:
		return &p.RTP
	case ServiceSDK:
		return &p.SDK
	case ServiceSDKOverTLS:
		return &p.SDKOverTLS
	case ServiceWebSocket:
		return &p.WebSocket
	case ServiceSADP:
		return &p.SADP
	case ServiceWSDiscovery:
		return &p.WSDiscovery
	}
	return nil
}

// Config configures a Device. The zero Config is valid: the default
// profile's identity, every service on a free port of 0.0.0.0, user admin
// and a random password.
type Config struct {
	// Profile picks the identity, firmware and credentials defaults. ""
	// means ProfileDefault.
	Profile Profile
	// Identity overrides the profile's identity field by field; zero
	// fields keep the profile's value.
	Identity Identity
	// Ports are the service ports: 0 picks a free port, -1 turns a service
	// off. The zero value puts every service on a free port.
	Ports Ports

	// Listen is the IPv4 address every socket binds. The zero value means
	// 0.0.0.0. SADP and WS-Discovery receive multicast probes only when
	// Listen is unspecified (a socket bound to a unicast address does not
	// see group traffic); bound to one address they still answer unicast
	// probes.
	Listen netip.Addr
	// Advertise is the IPv4 address the device reports as its own in SADP,
	// WS-Discovery, ISAPI network interfaces and RTSP DESCRIBE. The zero
	// value means the local address the request arrived on, as a real
	// device does.
	Advertise netip.Addr
	// Gateway is the default gateway reported in SADP and ISAPI. The zero
	// value means the first host of the reported address's subnet.
	Gateway netip.Addr
	// MulticastInterfaces names the interfaces on which SADP and
	// WS-Discovery join 239.255.255.250. nil means every interface that is
	// up, multicast-capable, not loopback and has an IPv4 address. Used
	// only when Listen is unspecified.
	MulticastInterfaces []string

	// User is the admin user name. "" means "admin".
	User string
	// Password is the admin password. "" means the profile's default
	// password ("12345" for ProfileVulnerable) or, when the profile has
	// none, a random strong password (see Device.Password).
	Password string
	// HTTPSEnabled turns HTTPS on or off, as adminAccesses reports it. nil
	// means the profile's choice (off only for ProfileVulnerable).
	HTTPSEnabled *bool
	// DigestAlgorithms lists the ISAPI digest algorithms offered, one
	// WWW-Authenticate header each, in order of preference: "SHA-256",
	// "MD5", "SHA-256-sess", "MD5-sess". nil means SHA-256 then MD5. RTSP
	// always offers MD5 without qop, like a real device.
	DigestAlgorithms []string
	// NonceLifetime is how long a digest nonce stays fresh; an older one
	// gets stale=true. 0 means 5 minutes.
	NonceLifetime time.Duration
	// MaxFailedLogins is how many failed logins lock a source IP. 0 means 7
	// (Hikvision's default for admin); a negative value never locks.
	MaxFailedLogins int
	// LockDuration is how long a locked source stays locked. 0 means 30
	// minutes.
	LockDuration time.Duration

	// TLSCertFile and TLSKeyFile are a PEM certificate and key for HTTPS
	// and SDK-over-TLS. "" means a self-signed ECDSA certificate generated
	// by New, with the device's addresses in its SANs.
	TLSCertFile, TLSKeyFile string
	// RequestLogSize bounds the request log (Device.Requests). 0 means
	// 1000 entries; older entries are dropped first.
	RequestLogSize int
	// Logger receives the device's logs, with component=sim. nil discards
	// them. Credentials are never logged.
	Logger *slog.Logger
}

func (c *Config) nonceLifetime() time.Duration {
	if c.NonceLifetime <= 0 {
		return 5 * time.Minute
	}
	return c.NonceLifetime
}

func (c *Config) maxFailedLogins() int {
	if c.MaxFailedLogins == 0 {
		return 7
	}
	return c.MaxFailedLogins
}

func (c *Config) lockDuration() time.Duration {
	if c.LockDuration <= 0 {
		return 30 * time.Minute
	}
	return c.LockDuration
}

func (c *Config) requestLogSize() int {
	if c.RequestLogSize <= 0 {
		return 1000
	}
	return c.RequestLogSize
}

func (c *Config) listen() netip.Addr {
	if !c.Listen.IsValid() {
		return netip.IPv4Unspecified()
	}
	return c.Listen.Unmap()
}

// ErrAlreadyRun is returned by Run when the Device has already run or been
// closed: a Device serves once.
var ErrAlreadyRun = errors.New("sim: device already ran or was closed")

// Device is one simulated DVR. Create it with New, serve with Run.
type Device struct {
	cfg      Config // as given, with Profile resolved
	id       Identity
	log      *slog.Logger
	realm    string
	user     string
	password string
	httpsOn  bool
	boot     time.Time
	auth     *digestAuth
	locks    *lockout
	reqs     *requestLog
	cert     tls.Certificate
	certX509 *x509.Certificate
	ifaces   []ifaceInfo
	clips    map[streamKind]*clip
	wsdSeq   atomic.Uint64 // WS-Discovery AppSequence MessageNumber

	// Bound sockets; nil when the service is off.
	tcp   map[Service]net.Listener
	udp   map[Service]*net.UDPConn
	rtcp  *net.UDPConn
	addrs map[Service]netip.AddrPort

	mu         sync.Mutex // guards following
	deviceName string
	state      int // 0 new, 1 running, 2 done
}

// New checks cfg, generates what it must (password, certificate), binds
// every enabled service's socket and returns the Device, ready to Run. On
// error nothing stays bound.
func New(cfg Config) (*Device, error) {
	if cfg.Profile == "" {
		cfg.Profile = ProfileDefault
	}
	spec, ok := lookupProfile(cfg.Profile)
	if !ok {
		return nil, fmt.Errorf("profile %q: unknown (want one of %s)", cfg.Profile, profileNames())
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Device{
		cfg:   cfg,
		log:   log.With("component", "sim"),
		boot:  time.Now(),
		tcp:   map[Service]net.Listener{},
		udp:   map[Service]*net.UDPConn{},
		addrs: map[Service]netip.AddrPort{},
	}
	id, err := cfg.Identity.resolve(spec.identity)
	if err != nil {
		return nil, err
	}
	d.id = id
	d.deviceName = id.DeviceName
	d.realm = realmFor(id.SerialNumber)
	d.user = cfg.User
	if d.user == "" {
		d.user = "admin"
	}
	if strings.ContainsAny(d.user, ":\"\\") || len(d.user) > 32 {
		return nil, fmt.Errorf("user %q: must be at most 32 characters without ':', '\"' or '\\'", d.user)
	}
	d.password = cfg.Password
	if d.password == "" {
		d.password = spec.password
	}
	if d.password == "" {
		if d.password, err = RandomPassword(); err != nil {
			return nil, err
		}
	}
	d.httpsOn = spec.https
	if cfg.HTTPSEnabled != nil {
		d.httpsOn = *cfg.HTTPSEnabled
	}
	if d.auth, err = newDigestAuth(d.realm, cfg.DigestAlgorithms, cfg.nonceLifetime()); err != nil {
		return nil, err
	}
	d.locks = newLockout(cfg.maxFailedLogins(), cfg.lockDuration())
	d.reqs = newRequestLog(cfg.requestLogSize())
	if cfg.Listen.IsValid() && !cfg.Listen.Unmap().Is4() && !cfg.Listen.IsUnspecified() {
		return nil, fmt.Errorf("listen %s: only IPv4 addresses are supported", cfg.Listen)
	}
	if cfg.Advertise.IsValid() && !cfg.Advertise.Unmap().Is4() {
		return nil, fmt.Errorf("advertise %s: must be an IPv4 address", cfg.Advertise)
	}
	if d.clips, err = loadClips(); err != nil {
		return nil, err
	}
	if d.ifaces, err = snapshotInterfaces(); err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	if err := d.loadOrMakeCert(); err != nil {
		return nil, err
	}
	if err := d.bind(); err != nil {
		d.closeSockets()
		return nil, err
	}
	return d, nil
}

// serviceOn reports whether service s is configured to run.
func (d *Device) serviceOn(s Service) bool {
	if d.cfg.Ports.Port(s) < 0 {
		return false
	}
	switch s {
	case ServiceHTTPS:
		return d.httpsOn
	case ServiceRTP:
		// The RTP pair belongs to the RTSP server.
		return d.cfg.Ports.RTSP >= 0
	}
	return true
}

// Run serves every service until ctx is done, then closes every socket
// and connection and waits for its goroutines. It returns nil after a
// clean shutdown, or the first error that stopped a service (the others
// are then stopped too).
func (d *Device) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.state != 0 {
		d.mu.Unlock()
		return ErrAlreadyRun
	}
	d.state = 1
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.state = 2
		d.mu.Unlock()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type runner struct {
		name string
		fn   func(context.Context) error
	}
	var rs []runner
	for _, s := range []Service{ServiceHTTP, ServiceHTTPS} {
		if ln := d.tcp[s]; ln != nil {
			rs = append(rs, runner{string(s), func(ctx context.Context) error { return d.serveWeb(ctx, s, ln) }})
		}
	}
	if ln := d.tcp[ServiceRTSP]; ln != nil {
		rs = append(rs, runner{"rtsp", func(ctx context.Context) error { return d.serveRTSP(ctx, ln) }})
	}
	for _, s := range []Service{ServiceSDK, ServiceSDKOverTLS} {
		if ln := d.tcp[s]; ln != nil {
			rs = append(rs, runner{string(s), func(ctx context.Context) error { return d.serveHold(ctx, s, ln) }})
		}
	}
	if ln := d.tcp[ServiceWebSocket]; ln != nil {
		rs = append(rs, runner{"websocket", func(ctx context.Context) error { return d.serveWebSocket(ctx, ln) }})
	}
	if c := d.udp[ServiceSADP]; c != nil {
		rs = append(rs, runner{"sadp", func(ctx context.Context) error { return d.serveDiscovery(ctx, ServiceSADP, c, d.answerSADP) }})
	}
	if c := d.udp[ServiceWSDiscovery]; c != nil {
		rs = append(rs, runner{"wsdiscovery", func(ctx context.Context) error {
			return d.serveDiscovery(ctx, ServiceWSDiscovery, c, d.answerWSDiscovery)
		}})
	}
	errc := make(chan error, len(rs))
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.fn(ctx)
			if err != nil && ctx.Err() == nil {
				err = fmt.Errorf("%s: %w", r.name, err)
				d.log.Error("service stopped", "service", r.name, "err", err)
				errc <- err
				cancel()
			}
		}()
	}
	d.log.Info("simulated DVR running", "model", d.id.Model, "profile", string(d.cfg.Profile))
	<-ctx.Done()
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	return nil
}

// Close releases the sockets of a Device whose Run was never called. It
// does nothing once Run has started (Run releases everything itself).
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != 0 {
		return nil
	}
	d.state = 2
	d.closeSockets()
	return nil
}

func (d *Device) closeSockets() {
	for _, ln := range d.tcp {
		ln.Close()
	}
	for _, c := range d.udp {
		c.Close()
	}
	if d.rtcp != nil {
		d.rtcp.Close()
	}
}

// Addr returns the bound address of service s, or the zero AddrPort when
// the service is off. For ServiceRTP it is the RTP port; RTCP is the next.
func (d *Device) Addr(s Service) netip.AddrPort { return d.addrs[s] }

// DialAddr is Addr with an unspecified address replaced by 127.0.0.1: the
// address a local client connects to.
func (d *Device) DialAddr(s Service) netip.AddrPort {
	a := d.addrs[s]
	if a.IsValid() && a.Addr().IsUnspecified() {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), a.Port())
	}
	return a
}

// RTSPURL returns the URL of stream path (for example "101" or "102") as
// a local client would use it, without credentials.
func (d *Device) RTSPURL(stream string) string {
	return "rtsp://" + d.DialAddr(ServiceRTSP).String() + "/Streaming/Channels/" + stream
}

// User returns the admin user name.
func (d *Device) User() string { return d.user }

// Password returns the admin password (possibly generated by New).
func (d *Device) Password() string { return d.password }

// Profile returns the profile the device was built from.
func (d *Device) Profile() Profile { return d.cfg.Profile }

// Identity returns the device's resolved identity; DeviceName reflects
// any change made through PUT /ISAPI/System/deviceInfo.
func (d *Device) Identity() Identity {
	id := d.id
	id.MAC = slices.Clone(d.id.MAC)
	id.Activated = ptr(*d.id.Activated)
	d.mu.Lock()
	id.DeviceName = d.deviceName
	d.mu.Unlock()
	return id
}

// Realm returns the digest realm, "IP Camera(NNNNN)".
func (d *Device) Realm() string { return d.realm }

// HTTPSEnabled reports whether HTTPS is on (and so listed as enabled in
// adminAccesses).
func (d *Device) HTTPSEnabled() bool { return d.httpsOn }

// Certificate returns the certificate served on HTTPS and SDK-over-TLS,
// so a client can trust it.
func (d *Device) Certificate() *x509.Certificate { return d.certX509 }

// FailedLogins returns the consecutive failed logins from src since its
// last success or lock expiry (it stays at the limit while src is locked).
func (d *Device) FailedLogins(src netip.Addr) int { return d.locks.failures(src) }

// TotalFailedLogins returns every failed login since New, from any source.
func (d *Device) TotalFailedLogins() int { return d.locks.totalFailures() }

// Locked reports whether src is locked out by the illegal-login lock.
func (d *Device) Locked(src netip.Addr) bool {
	locked, _ := d.locks.locked(src)
	return locked
}

// Unlock clears src's failures and lock, as a reboot of the real device does.
func (d *Device) Unlock(src netip.Addr) { d.locks.succeed(src) }

// Requests returns a copy of the request log, oldest first.
func (d *Device) Requests() []Request { return d.reqs.snapshot() }
