package sim

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// isapiNS is the namespace of every ISAPI document.
const isapiNS = "http://www.hikvision.com/ver20/XMLSchema"

// maxBodyBytes bounds request bodies (PUT deviceInfo, webLanguage).
const maxBodyBytes = 64 << 10

// serveWeb runs the HTTP or HTTPS server on ln until ctx is done.
func (d *Device) serveWeb(ctx context.Context, svc Service, ln net.Listener) error {
	srv := &http.Server{
		Handler:           d.webHandler(svc),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    32 << 10,
		// Scanners and broken TLS clients are normal for a device; keep
		// the server's own complaints out of stderr.
		ErrorLog: discardLogger(),
	}
	if svc == ServiceHTTPS {
		srv.TLSConfig = d.tlsConfig()
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	return serveUntilDone(ctx, srv, ln)
}

// serveUntilDone serves srv on ln and shuts it down when ctx is done.
func serveUntilDone(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	srv.Close()
	<-errc
	return nil
}

// reqMeta collects what the handlers learn about a request for the log.
type reqMeta struct{ user string }

type reqMetaKey struct{}

// statusWriter records the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serverHeader is the Server header of the device's web server: DVRs and
// NVRs answer "DNVRS-Webs", cameras "App-webs/".
func (d *Device) serverHeader() string {
	if strings.EqualFold(d.id.DeviceType, "IPCamera") {
		return "App-webs/"
	}
	return "DNVRS-Webs"
}

// webHandler routes one web service's requests and logs each one.
func (d *Device) webHandler(svc Service) http.Handler {
	web := http.NewServeMux()
	web.HandleFunc("GET /{$}", d.handleLoginPage)
	web.HandleFunc("GET /doc/page/login.asp", d.handleLoginPage)
	web.HandleFunc("/SDK/webLanguage", d.handleWebLanguage)
	web.HandleFunc("/onvif/device_service", d.handleONVIF)
	web.HandleFunc("/onvif/Media", d.handleONVIF)
	web.HandleFunc("/", handleWebNotFound)

	isapi := http.NewServeMux()
	isapi.HandleFunc("GET /ISAPI/System/deviceInfo", d.handleDeviceInfo)
	isapi.HandleFunc("PUT /ISAPI/System/deviceInfo", d.handlePutDeviceInfo)
	isapi.HandleFunc("GET /ISAPI/Security/adminAccesses", d.handleAdminAccesses)
	isapi.HandleFunc("GET /ISAPI/Security/adminAccesses/{id}", d.handleAdminAccess)
	isapi.HandleFunc("GET /ISAPI/System/Network/interfaces", d.handleInterfaces)
	isapi.HandleFunc("GET /ISAPI/System/Network/interfaces/{id}", d.handleInterfaces)
	isapi.HandleFunc("GET /ISAPI/Security/userCheck", d.handleUserCheck)
	isapi.HandleFunc("GET /ISAPI/Security/illegalLoginLock", d.handleIllegalLoginLock)
	isapi.HandleFunc("/ISAPI/", handleISAPINotFound)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		meta := &reqMeta{}
		r = r.WithContext(context.WithValue(r.Context(), reqMetaKey{}, meta))
		sw := &statusWriter{ResponseWriter: w}
		sw.Header().Set("Server", d.serverHeader())
		if strings.HasPrefix(r.URL.Path, "/ISAPI/") {
			if d.authorize(sw, r, svc) {
				isapi.ServeHTTP(sw, r)
			}
		} else {
			web.ServeHTTP(sw, r)
		}
		src := remoteAddr(r)
		d.reqs.add(Request{Service: svc, Source: src, Method: r.Method, Path: r.URL.RequestURI(),
			Status: sw.status, User: meta.user})
		d.log.Debug("request", "service", string(svc), "src", src.String(), "method", r.Method,
			"path", r.URL.Path, "status", sw.status)
	})
}

func remoteAddr(r *http.Request) netip.AddrPort {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.AddrPort{}
	}
	return unmapAP(ap)
}

func localAddr(r *http.Request) netip.Addr {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap.Addr().Unmap()
		}
	}
	return netip.Addr{}
}

// uriMatcher accepts a digest uri parameter naming the request target:
// the exact request-target, or an absolute URL with the same path and
// query (RFC 7616 section 3.4.6).
func uriMatcher(r *http.Request) func(string) bool {
	return func(uri string) bool {
		if uri == r.RequestURI || uri == r.URL.RequestURI() {
			return true
		}
		u, err := url.Parse(uri)
		return err == nil && u.RequestURI() == r.URL.RequestURI()
	}
}

// authorize checks the request's credentials and the illegal-login lock,
// and answers the request itself when they do not let it through.
func (d *Device) authorize(w http.ResponseWriter, r *http.Request, svc Service) bool {
	src := remoteAddr(r).Addr()
	meta, _ := r.Context().Value(reqMetaKey{}).(*reqMeta)
	h := r.Header.Get("Authorization")
	var c credentials
	var perr error
	if h != "" {
		c, perr = parseAuthorization(h)
		if meta != nil {
			meta.user = presentedUser(c)
		}
	}
	if locked, left := d.locks.locked(src); locked {
		d.log.Info("refused: source is locked", "service", string(svc), "src", src.String(), "unlock_in", left.Round(time.Second))
		d.writeUnauthorized(w, false, true, left, 0)
		return false
	}
	switch {
	case h == "":
		d.writeUnauthorized(w, false, false, 0, d.locks.remaining(src))
		return false
	case perr != nil:
		writeStatus(w, r, http.StatusBadRequest, 4, "Invalid Operation", "badAuthorization")
		return false
	case c.scheme == "digest":
		v := d.auth.verify(digestRequest{method: r.Method, uriOK: uriMatcher(r)}, c.params, d.user, d.password)
		switch v {
		case verdictOK:
			d.locks.succeed(src)
			return true
		case verdictStale, verdictUnknownNonce:
			d.writeUnauthorized(w, v == verdictStale, false, 0, d.locks.remaining(src))
		case verdictMalformed:
			writeStatus(w, r, http.StatusBadRequest, 4, "Invalid Operation", "badAuthorization")
		default:
			d.failedLogin(w, svc, src, c.params["username"])
		}
		return false
	case c.scheme == "basic":
		// The device runs in digest-only mode, Hikvision's hardened
		// setting: Basic is refused, and counted as a failed login
		// whatever it carries (whether real firmware counts it is
		// unverified; the cautious reading is that it does).
		d.failedLogin(w, svc, src, presentedUser(c))
		return false
	default:
		d.writeUnauthorized(w, false, false, 0, d.locks.remaining(src))
		return false
	}
}

// presentedUser returns the user name in credentials, never the password.
func presentedUser(c credentials) string {
	if c.scheme == "basic" {
		if b, err := base64.StdEncoding.DecodeString(c.token68); err == nil {
			u, _, _ := strings.Cut(string(b), ":")
			return u
		}
		return ""
	}
	return c.params["username"]
}

// failedLogin counts a failed login from src and answers it.
func (d *Device) failedLogin(w http.ResponseWriter, svc Service, src netip.Addr, user string) {
	locked, remaining := d.locks.fail(src)
	if locked {
		d.log.Warn("illegal login lock: source locked", "service", string(svc), "src", src.String(),
			"user", user, "failures", d.locks.failures(src), "duration", d.cfg.lockDuration())
		d.writeUnauthorized(w, false, true, d.cfg.lockDuration(), 0)
		return
	}
	d.log.Info("failed login", "service", string(svc), "src", src.String(), "user", user, "attempts_left", remaining)
	d.writeUnauthorized(w, false, false, 0, remaining)
}

// userCheckXML is the body of /ISAPI/Security/userCheck, which the device
// also sends with every 401. Third-party clients read lockStatus,
// unlockTime (seconds) and retryLoginTime (attempts left) from it to tell
// a lockout from a wrong password.
type userCheckXML struct {
	XMLName           xml.Name `xml:"http://www.hikvision.com/ver20/XMLSchema userCheck"`
	Version           string   `xml:"version,attr"`
	StatusValue       int      `xml:"statusValue"`
	StatusString      string   `xml:"statusString"`
	IsDefaultPassword *bool    `xml:"isDefaultPassword,omitempty"`
	IsRiskPassword    *bool    `xml:"isRiskPassword,omitempty"`
	LockStatus        string   `xml:"lockStatus"`
	UnlockTime        int      `xml:"unlockTime"`
	RetryLoginTime    int      `xml:"retryLoginTime"`
}

// writeUnauthorized sends 401 with fresh digest challenges and a userCheck
// body: lockStatus "lock" and unlockTime when the source is locked,
// otherwise "unlock" and the attempts left.
func (d *Device) writeUnauthorized(w http.ResponseWriter, stale, locked bool, left time.Duration, remaining int) {
	for _, c := range d.auth.httpChallenges(stale) {
		w.Header().Add("WWW-Authenticate", c)
	}
	body := userCheckXML{Version: "2.0", StatusValue: 401, StatusString: "Unauthorized", LockStatus: "unlock", RetryLoginTime: remaining}
	if locked {
		body.LockStatus = "lock"
		body.UnlockTime = int(math.Ceil(left.Seconds()))
		body.RetryLoginTime = 0
	}
	writeXML(w, http.StatusUnauthorized, body)
}

// writeXML writes an ISAPI document.
func writeXML(w http.ResponseWriter, status int, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", `application/xml; charset="UTF-8"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(xml.Header)+len(b)))
	w.WriteHeader(status)
	io.WriteString(w, xml.Header)
	w.Write(b)
}

// responseStatusXML is ISAPI's generic answer to writes and errors.
// statusCode: 1 OK, 4 Invalid Operation, 6 Invalid XML Content.
type responseStatusXML struct {
	XMLName       xml.Name `xml:"http://www.hikvision.com/ver20/XMLSchema ResponseStatus"`
	Version       string   `xml:"version,attr"`
	RequestURL    string   `xml:"requestURL"`
	StatusCode    int      `xml:"statusCode"`
	StatusString  string   `xml:"statusString"`
	SubStatusCode string   `xml:"subStatusCode"`
}

func writeStatus(w http.ResponseWriter, r *http.Request, httpStatus, code int, str, sub string) {
	writeXML(w, httpStatus, responseStatusXML{Version: "2.0", RequestURL: r.URL.Path,
		StatusCode: code, StatusString: str, SubStatusCode: sub})
}

func handleISAPINotFound(w http.ResponseWriter, r *http.Request) {
	writeStatus(w, r, http.StatusNotFound, 4, "Invalid Operation", "notSupport")
}

type deviceInfoXML struct {
	XMLName              xml.Name `xml:"http://www.hikvision.com/ver20/XMLSchema DeviceInfo"`
	Version              string   `xml:"version,attr"`
	DeviceName           string   `xml:"deviceName"`
	DeviceID             string   `xml:"deviceID"`
	Model                string   `xml:"model"`
	SerialNumber         string   `xml:"serialNumber"`
	MACAddress           string   `xml:"macAddress"`
	FirmwareVersion      string   `xml:"firmwareVersion"`
	FirmwareReleasedDate string   `xml:"firmwareReleasedDate"`
	EncoderVersion       string   `xml:"encoderVersion"`
	EncoderReleasedDate  string   `xml:"encoderReleasedDate"`
	DeviceType           string   `xml:"deviceType"`
	TelecontrolID        int      `xml:"telecontrolID"`
	HardwareVersion      string   `xml:"hardwareVersion"`
}

func (d *Device) handleDeviceInfo(w http.ResponseWriter, r *http.Request) {
	id := d.Identity()
	writeXML(w, http.StatusOK, deviceInfoXML{
		Version:              "2.0",
		DeviceName:           id.DeviceName,
		DeviceID:             id.DeviceID,
		Model:                id.Model,
		SerialNumber:         id.SerialNumber,
		MACAddress:           id.MAC.String(),
		FirmwareVersion:      id.FirmwareVersion,
		FirmwareReleasedDate: id.FirmwareReleasedDate(),
		EncoderVersion:       id.EncoderVersion,
		EncoderReleasedDate:  "build " + id.EncoderBuild,
		DeviceType:           id.DeviceType,
		TelecontrolID:        255,
		HardwareVersion:      "0x0",
	})
}

// parseDeviceInfoPUT reads the new deviceName from a PUT deviceInfo body.
// It returns "" when the body does not set one. Other elements are
// read-only on a real device and are ignored.
func parseDeviceInfoPUT(body []byte) (string, error) {
	var v struct {
		XMLName    xml.Name
		DeviceName *string `xml:"deviceName"`
	}
	if err := xml.Unmarshal(body, &v); err != nil {
		return "", fmt.Errorf("deviceInfo: %w", err)
	}
	if v.XMLName.Local != "DeviceInfo" {
		return "", fmt.Errorf("deviceInfo: root element %q, want DeviceInfo", v.XMLName.Local)
	}
	if v.DeviceName == nil {
		return "", nil
	}
	name := strings.TrimSpace(*v.DeviceName)
	if err := checkText(name, 64); err != nil {
		return "", fmt.Errorf("deviceInfo: deviceName: %w", err)
	}
	return name, nil
}

func (d *Device) handlePutDeviceInfo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeStatus(w, r, http.StatusBadRequest, 6, "Invalid XML Content", "badXmlContent")
		return
	}
	name, err := parseDeviceInfoPUT(body)
	if err != nil {
		writeStatus(w, r, http.StatusBadRequest, 6, "Invalid XML Content", "badXmlContent")
		return
	}
	if name != "" {
		d.mu.Lock()
		d.deviceName = name
		d.mu.Unlock()
		d.log.Info("device name changed", "name", name)
	}
	writeStatus(w, r, http.StatusOK, 1, "OK", "ok")
}

// adminAccessXML is one entry. It has no XMLName: encoding/xml writes
// xmlns="" for a nested element whose struct carries one without a
// namespace, which would take the entry out of the ISAPI namespace.
type adminAccessXML struct {
	ID              int    `xml:"id"`
	Enabled         bool   `xml:"enabled"`
	Protocol        string `xml:"protocol"`
	PortNo          int    `xml:"portNo"`
	RedirectToHTTPS *bool  `xml:"redirectToHttps,omitempty"`
	TLS11Enable     *bool  `xml:"TLS1_1Enable,omitempty"`
	TLS12Enable     *bool  `xml:"TLS1_2Enable,omitempty"`
	StreamOverTLS   *bool  `xml:"streamOverTls,omitempty"`
}

// adminAccessDocXML is one entry as its own document (GET .../{id}).
type adminAccessDocXML struct {
	XMLName xml.Name `xml:"http://www.hikvision.com/ver20/XMLSchema AdminAccessProtocol"`
	Version string   `xml:"version,attr"`
	adminAccessXML
}

type adminAccessListXML struct {
	XMLName   xml.Name         `xml:"http://www.hikvision.com/ver20/XMLSchema AdminAccessProtocolList"`
	Version   string           `xml:"version,attr"`
	Protocols []adminAccessXML `xml:"AdminAccessProtocol"`
}

// protocolService maps an adminAccesses protocol name to its service and
// the port a device lists for it when the service is off and no port is
// configured.
func protocolService(proto string) (Service, int) {
	switch proto {
	case protoHTTP:
		return ServiceHTTP, 80
	case protoHTTPS:
		return ServiceHTTPS, 443
	case protoRTSP:
		return ServiceRTSP, 554
	case protoDevManage:
		return ServiceSDK, 8000
	case protoWebSocket:
		return ServiceWebSocket, 7681
	case protoSDKOverTLS:
		return ServiceSDKOverTLS, 8443
	}
	return "", 0
}

// adminAccesses lists the device's service ports, in the profile's order:
// bound ports for running services, and for a service that is off its
// configured (or standard) port with enabled=false, as a device with
// HTTPS disabled lists 443.
func (d *Device) adminAccesses() []adminAccessXML {
	spec, _ := lookupProfile(d.cfg.Profile)
	var out []adminAccessXML
	for i, proto := range spec.protocols {
		svc, std := protocolService(proto)
		e := adminAccessXML{ID: i + 1, Protocol: proto}
		e.PortNo, e.Enabled = d.reportedPort(svc, std)
		switch proto {
		case protoHTTPS:
			e.RedirectToHTTPS, e.TLS11Enable, e.TLS12Enable = ptr(false), ptr(false), ptr(true)
		case protoSDKOverTLS:
			e.StreamOverTLS = ptr(false)
		}
		out = append(out, e)
	}
	return out
}

func (d *Device) handleAdminAccesses(w http.ResponseWriter, r *http.Request) {
	writeXML(w, http.StatusOK, adminAccessListXML{Version: "2.0", Protocols: d.adminAccesses()})
}

func (d *Device) handleAdminAccess(w http.ResponseWriter, r *http.Request) {
	for _, e := range d.adminAccesses() {
		if strconv.Itoa(e.ID) == r.PathValue("id") {
			writeXML(w, http.StatusOK, adminAccessDocXML{Version: "2.0", adminAccessXML: e})
			return
		}
	}
	handleISAPINotFound(w, r)
}

type ipAddrXML struct {
	IPAddress string `xml:"ipAddress"`
}

// netIfXML is one interface (no XMLName, as adminAccessXML).
type netIfXML struct {
	ID        int `xml:"id"`
	IPAddress struct {
		IPVersion      string    `xml:"ipVersion"`
		AddressingType string    `xml:"addressingType"`
		IPAddress      string    `xml:"ipAddress"`
		SubnetMask     string    `xml:"subnetMask"`
		DefaultGateway ipAddrXML `xml:"DefaultGateway"`
		PrimaryDNS     ipAddrXML `xml:"PrimaryDNS"`
		SecondaryDNS   ipAddrXML `xml:"SecondaryDNS"`
	} `xml:"IPAddress"`
	Link struct {
		MACAddress      string `xml:"MACAddress"`
		AutoNegotiation bool   `xml:"autoNegotiation"`
		Speed           int    `xml:"speed"`
		Duplex          string `xml:"duplex"`
		MTU             int    `xml:"MTU"`
	} `xml:"Link"`
}

type netIfDocXML struct {
	XMLName xml.Name `xml:"http://www.hikvision.com/ver20/XMLSchema NetworkInterface"`
	Version string   `xml:"version,attr"`
	netIfXML
}

type netIfListXML struct {
	XMLName    xml.Name   `xml:"http://www.hikvision.com/ver20/XMLSchema NetworkInterfaceList"`
	Version    string     `xml:"version,attr"`
	Interfaces []netIfXML `xml:"NetworkInterface"`
}

func (d *Device) handleInterfaces(w http.ResponseWriter, r *http.Request) {
	own := d.ownAddr(localAddr(r), 0, remoteAddr(r).Addr())
	p := d.subnetOf(own)
	gw := d.gatewayFor(own)
	var n netIfXML
	n.ID = 1
	n.IPAddress.IPVersion = "v4"
	n.IPAddress.AddressingType = "static"
	n.IPAddress.IPAddress = own.String()
	n.IPAddress.SubnetMask = maskString(p.Bits())
	n.IPAddress.DefaultGateway.IPAddress = gw.String()
	n.IPAddress.PrimaryDNS.IPAddress = gw.String()
	n.IPAddress.SecondaryDNS.IPAddress = "0.0.0.0"
	n.Link.MACAddress = d.id.MAC.String()
	n.Link.AutoNegotiation = true
	n.Link.Speed = 100
	n.Link.Duplex = "full"
	n.Link.MTU = 1500
	if id := r.PathValue("id"); id != "" {
		if id != "1" {
			handleISAPINotFound(w, r)
			return
		}
		writeXML(w, http.StatusOK, netIfDocXML{Version: "2.0", netIfXML: n})
		return
	}
	writeXML(w, http.StatusOK, netIfListXML{Version: "2.0", Interfaces: []netIfXML{n}})
}

func (d *Device) handleUserCheck(w http.ResponseWriter, r *http.Request) {
	writeXML(w, http.StatusOK, userCheckXML{
		Version: "2.0", StatusValue: 200, StatusString: "OK",
		IsDefaultPassword: ptr(d.password == "12345"),
		IsRiskPassword:    ptr(riskyPassword(d.password)),
		LockStatus:        "unlock",
		RetryLoginTime:    d.locks.remaining(remoteAddr(r).Addr()),
	})
}

// riskyPassword applies Hikvision's activation rule: 8 to 16 characters
// from at least two of lower case, upper case, digits and symbols.
func riskyPassword(p string) bool {
	var classes [4]bool
	for _, c := range p {
		switch {
		case c >= 'a' && c <= 'z':
			classes[0] = true
		case c >= 'A' && c <= 'Z':
			classes[1] = true
		case c >= '0' && c <= '9':
			classes[2] = true
		default:
			classes[3] = true
		}
	}
	n := 0
	for _, b := range classes {
		if b {
			n++
		}
	}
	return len(p) < 8 || n < 2
}

type illegalLoginLockXML struct {
	XMLName              xml.Name `xml:"http://www.hikvision.com/ver20/XMLSchema IllegalLoginLock"`
	Version              string   `xml:"version,attr"`
	Enabled              bool     `xml:"enabled"`
	MaxIllegalLoginTimes int      `xml:"maxIllegalLoginTimes,omitempty"`
}

func (d *Device) handleIllegalLoginLock(w http.ResponseWriter, r *http.Request) {
	v := illegalLoginLockXML{Version: "2.0", Enabled: d.locks.max > 0}
	if v.Enabled {
		v.MaxIllegalLoginTimes = d.locks.max
	}
	writeXML(w, http.StatusOK, v)
}

// handleWebLanguage is /SDK/webLanguage, the path of CVE-2021-36260 (a
// PUT whose <language> was run by a shell on vulnerable firmware). The
// simulator only records the hit (the request log shows it) and never
// interprets the body.
func (d *Device) handleWebLanguage(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		w.Header().Set("Content-Type", `application/xml; charset="UTF-8"`)
		io.WriteString(w, xml.Header+`<Language><type>English</type></Language>`)
	case http.MethodPut:
		n, _ := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxBodyBytes))
		d.log.Warn("PUT /SDK/webLanguage received (the CVE-2021-36260 path); recorded, not executed",
			"src", remoteAddr(r).String(), "body_bytes", n)
		writeStatus(w, r, http.StatusOK, 1, "OK", "ok")
	default:
		w.Header().Set("Allow", "GET, PUT")
		writeStatus(w, r, http.StatusMethodNotAllowed, 4, "Invalid Operation", "methodNotAllowed")
	}
}

func handleWebNotFound(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	io.WriteString(w, `<!DOCTYPE html><html><head><title>Document Error: Page Not Found</title></head>`+
		`<body><h2>Access Error: 404 -- Not Found</h2><p>Can't locate document</p></body></html>`)
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
