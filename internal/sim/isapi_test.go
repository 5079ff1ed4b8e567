package sim

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icholy/digest"
)

// digestClient returns an icholy/digest client that answers the challenge
// with the given algorithm (the library otherwise takes the first one).
func digestClient(d *Device, algo string, tlsCfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &digest.Transport{
		Username: d.User(),
		Password: d.Password(),
		FindChallenge: func(h http.Header) (*digest.Challenge, error) {
			for _, v := range h.Values("WWW-Authenticate") {
				c, err := digest.ParseChallenge(v)
				if err == nil && strings.EqualFold(c.Algorithm, algo) {
					return c, nil
				}
			}
			return nil, digest.ErrNoChallenge
		},
		Transport: &http.Transport{TLSClientConfig: tlsCfg},
	}}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	// Every element of an ISAPI document is in the ISAPI namespace.
	if strings.Contains(string(b), `xmlns=""`) {
		t.Errorf("GET %s: an element leaves the namespace:\n%s", url, b)
	}
	return res.StatusCode, string(b)
}

type deviceInfoDoc struct {
	XMLName              xml.Name
	Version              string `xml:"version,attr"`
	DeviceName           string `xml:"deviceName"`
	DeviceID             string `xml:"deviceID"`
	Model                string `xml:"model"`
	SerialNumber         string `xml:"serialNumber"`
	MACAddress           string `xml:"macAddress"`
	FirmwareVersion      string `xml:"firmwareVersion"`
	FirmwareReleasedDate string `xml:"firmwareReleasedDate"`
	EncoderVersion       string `xml:"encoderVersion"`
	DeviceType           string `xml:"deviceType"`
}

func TestISAPIDigestIcholy(t *testing.T) {
	d := start(t, Config{})
	for _, algo := range []string{"MD5", "SHA-256"} {
		t.Run(algo, func(t *testing.T) {
			c := digestClient(d, algo, nil)
			url := "http://" + d.DialAddr(ServiceHTTP).String() + "/ISAPI/System/deviceInfo"
			for i := 0; i < 3; i++ { // reuses the challenge with nc 2, 3
				code, body := get(t, c, url)
				if code != 200 {
					t.Fatalf("request %d: got %d, want 200: %s", i, code, body)
				}
			}
		})
	}
	if n := d.TotalFailedLogins(); n != 0 {
		t.Fatalf("failed logins: got %d, want 0", n)
	}
}

func TestISAPIDigestCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("needs curl")
	}
	for _, algo := range []string{"MD5", "SHA-256"} {
		t.Run(algo, func(t *testing.T) {
			// Offer only this algorithm: curl answers whichever it likes.
			d := start(t, Config{DigestAlgorithms: []string{algo}})
			// curl reads the credentials from a netrc file, so the
			// password never appears on a command line.
			netrc := filepath.Join(t.TempDir(), "netrc")
			os.WriteFile(netrc, fmt.Appendf(nil, "machine 127.0.0.1 login %s password %s\n", d.User(), d.Password()), 0o600)
			url := "http://" + d.DialAddr(ServiceHTTP).String() + "/ISAPI/System/deviceInfo"
			out, err := exec.Command("curl", "-sS", "--digest", "--netrc-file", netrc, "-w", "\n%{http_code}", url).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			s := strings.TrimSpace(string(out))
			i := strings.LastIndex(s, "\n")
			body, code := s[:i+1], s[i+1:]
			if code != "200" || !strings.Contains(body, "<model>DS-7208HQHI-K1</model>") {
				t.Fatalf("got %s, want 200 with the model:\n%s", code, out)
			}
		})
	}
}

func TestDeviceInfo(t *testing.T) {
	tests := []struct {
		profile Profile
		model   string
		date    string
		typ     string
	}{
		{ProfileDefault, "DS-7208HQHI-K1", "build 220120", "DVR"},
		{ProfileVulnerable, "DS-7204HQHI-K1", "build 200318", "DVR"},
		{ProfilePatched, "DS-2CD2143G0-I", "build 210628", "IPCamera"},
	}
	for _, tc := range tests {
		t.Run(string(tc.profile), func(t *testing.T) {
			d := start(t, Config{Profile: tc.profile})
			code, body := get(t, digestClient(d, "MD5", nil), "http://"+d.DialAddr(ServiceHTTP).String()+"/ISAPI/System/deviceInfo")
			if code != 200 {
				t.Fatalf("got %d, want 200", code)
			}
			if !strings.HasPrefix(body, `<?xml version="1.0" encoding="UTF-8"?>`) {
				t.Errorf("no XML declaration: %.60s", body)
			}
			var v deviceInfoDoc
			if err := xml.Unmarshal([]byte(body), &v); err != nil {
				t.Fatal(err)
			}
			id := d.Identity()
			checks := []struct{ name, got, want string }{
				{"root", v.XMLName.Local, "DeviceInfo"},
				{"namespace", v.XMLName.Space, isapiNS},
				{"version", v.Version, "2.0"},
				{"model", v.Model, tc.model},
				{"firmwareReleasedDate", v.FirmwareReleasedDate, tc.date},
				{"deviceType", v.DeviceType, tc.typ},
				{"serialNumber", v.SerialNumber, id.SerialNumber},
				{"macAddress", v.MACAddress, id.MAC.String()},
				{"deviceID", v.DeviceID, id.DeviceID},
				{"firmwareVersion", v.FirmwareVersion, id.FirmwareVersion},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
				}
			}
			if !strings.HasSuffix(v.DeviceID, strings.ReplaceAll(id.MAC.String(), ":", "")) {
				t.Errorf("deviceID %q does not end with the MAC", v.DeviceID)
			}
		})
	}
}

type adminAccessDoc struct {
	XMLName   xml.Name
	Version   string `xml:"version,attr"`
	Protocols []struct {
		ID              int    `xml:"id"`
		Enabled         bool   `xml:"enabled"`
		Protocol        string `xml:"protocol"`
		PortNo          int    `xml:"portNo"`
		RedirectToHTTPS *bool  `xml:"redirectToHttps"`
		TLS12Enable     *bool  `xml:"TLS1_2Enable"`
		StreamOverTLS   *bool  `xml:"streamOverTls"`
	} `xml:"AdminAccessProtocol"`
}

func TestAdminAccesses(t *testing.T) {
	tests := []struct {
		profile   Profile
		order     []string
		httpsOn   bool
		httpsPort int // when off
	}{
		{ProfileDefault, []string{"HTTP", "RTSP", "HTTPS", "DEV_MANAGE", "WebSocket", "SDK_OVER_TLS"}, true, 0},
		{ProfileVulnerable, []string{"HTTP", "RTSP", "HTTPS", "DEV_MANAGE", "WebSocket", "SDK_OVER_TLS"}, false, 443},
		{ProfilePatched, []string{"HTTP", "HTTPS", "RTSP", "DEV_MANAGE", "WebSocket", "SDK_OVER_TLS"}, true, 0},
	}
	for _, tc := range tests {
		t.Run(string(tc.profile), func(t *testing.T) {
			d := start(t, Config{Profile: tc.profile})
			code, body := get(t, digestClient(d, "SHA-256", nil), "http://"+d.DialAddr(ServiceHTTP).String()+"/ISAPI/Security/adminAccesses")
			if code != 200 {
				t.Fatalf("got %d, want 200: %s", code, body)
			}
			var v adminAccessDoc
			if err := xml.Unmarshal([]byte(body), &v); err != nil {
				t.Fatal(err)
			}
			if v.XMLName.Local != "AdminAccessProtocolList" || v.XMLName.Space != isapiNS || v.Version != "2.0" {
				t.Fatalf("root: got %v version %q, want AdminAccessProtocolList in %s, 2.0", v.XMLName, v.Version, isapiNS)
			}
			if len(v.Protocols) != len(tc.order) {
				t.Fatalf("got %d protocols, want %d:\n%s", len(v.Protocols), len(tc.order), body)
			}
			svcOf := map[string]Service{"HTTP": ServiceHTTP, "HTTPS": ServiceHTTPS, "RTSP": ServiceRTSP,
				"DEV_MANAGE": ServiceSDK, "WebSocket": ServiceWebSocket, "SDK_OVER_TLS": ServiceSDKOverTLS}
			for i, p := range v.Protocols {
				if p.ID != i+1 || p.Protocol != tc.order[i] {
					t.Errorf("entry %d: got id %d %s, want id %d %s", i, p.ID, p.Protocol, i+1, tc.order[i])
				}
				wantOn, wantPort := true, int(d.Addr(svcOf[p.Protocol]).Port())
				if p.Protocol == "HTTPS" && !tc.httpsOn {
					wantOn, wantPort = false, tc.httpsPort
				}
				if p.Enabled != wantOn || p.PortNo != wantPort {
					t.Errorf("%s: got enabled=%v port %d, want enabled=%v port %d", p.Protocol, p.Enabled, p.PortNo, wantOn, wantPort)
				}
				if p.Protocol == "HTTPS" && (p.RedirectToHTTPS == nil || p.TLS12Enable == nil) {
					t.Errorf("HTTPS entry lacks redirectToHttps/TLS1_2Enable")
				}
				if p.Protocol == "SDK_OVER_TLS" && p.StreamOverTLS == nil {
					t.Errorf("SDK_OVER_TLS entry lacks streamOverTls")
				}
			}
			if tc.httpsOn != d.Addr(ServiceHTTPS).IsValid() {
				t.Errorf("HTTPS listening: got %v, want %v", d.Addr(ServiceHTTPS).IsValid(), tc.httpsOn)
			}
			// One entry by id has the namespace on its own root.
			code, body = get(t, digestClient(d, "MD5", nil), "http://"+d.DialAddr(ServiceHTTP).String()+"/ISAPI/Security/adminAccesses/1")
			if code != 200 || !strings.Contains(body, `<AdminAccessProtocol xmlns="`+isapiNS+`" version="2.0"><id>1</id>`) {
				t.Errorf("adminAccesses/1: got %d %s", code, body)
			}
		})
	}
}

// TestAdminAccessesRealPorts runs on fixed ports, as camgate sim does, and
// checks that the list names them.
func TestAdminAccessesRealPorts(t *testing.T) {
	ports := freePorts(t, 4)
	d := start(t, Config{Ports: Ports{HTTP: ports[0], RTSP: ports[1], SDK: ports[2], HTTPS: ports[3], SDKOverTLS: -1, WebSocket: -1}})
	_, body := get(t, digestClient(d, "MD5", nil), "http://"+d.DialAddr(ServiceHTTP).String()+"/ISAPI/Security/adminAccesses")
	for _, want := range []string{
		fmt.Sprintf("<protocol>HTTP</protocol><portNo>%d</portNo>", ports[0]),
		fmt.Sprintf("<protocol>RTSP</protocol><portNo>%d</portNo>", ports[1]),
		fmt.Sprintf("<enabled>true</enabled><protocol>HTTPS</protocol><portNo>%d</portNo>", ports[3]),
		fmt.Sprintf("<protocol>DEV_MANAGE</protocol><portNo>%d</portNo>", ports[2]),
		"<enabled>false</enabled><protocol>WebSocket</protocol><portNo>7681</portNo>",
		"<enabled>false</enabled><protocol>SDK_OVER_TLS</protocol><portNo>8443</portNo>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("adminAccesses lacks %q:\n%s", want, body)
		}
	}
}

func TestNetworkInterfaces(t *testing.T) {
	d := start(t, Config{Gateway: loopback()})
	code, body := get(t, digestClient(d, "MD5", nil), "http://"+d.DialAddr(ServiceHTTP).String()+"/ISAPI/System/Network/interfaces")
	if code != 200 {
		t.Fatalf("got %d", code)
	}
	var v struct {
		XMLName    xml.Name
		Interfaces []struct {
			ID        int `xml:"id"`
			IPAddress struct {
				IPAddress      string `xml:"ipAddress"`
				SubnetMask     string `xml:"subnetMask"`
				DefaultGateway struct {
					IPAddress string `xml:"ipAddress"`
				} `xml:"DefaultGateway"`
			} `xml:"IPAddress"`
			Link struct {
				MACAddress string `xml:"MACAddress"`
			} `xml:"Link"`
		} `xml:"NetworkInterface"`
	}
	if err := xml.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if v.XMLName.Local != "NetworkInterfaceList" || len(v.Interfaces) != 1 {
		t.Fatalf("got %s", body)
	}
	n := v.Interfaces[0]
	if n.IPAddress.IPAddress != "127.0.0.1" || n.IPAddress.SubnetMask != "255.0.0.0" ||
		n.IPAddress.DefaultGateway.IPAddress != "127.0.0.1" || n.Link.MACAddress != d.Identity().MAC.String() {
		t.Errorf("got %+v", n)
	}
}

func TestPutDeviceInfo(t *testing.T) {
	d := start(t, Config{})
	c := digestClient(d, "SHA-256", nil)
	url := "http://" + d.DialAddr(ServiceHTTP).String() + "/ISAPI/System/deviceInfo"
	put := func(body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/xml")
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	code, body := put(`<?xml version="1.0" encoding="UTF-8"?><DeviceInfo version="2.0" xmlns="` + isapiNS + `"><deviceName>Shop DVR</deviceName></DeviceInfo>`)
	if code != 200 || !strings.Contains(body, "<statusCode>1</statusCode>") {
		t.Fatalf("PUT: got %d %s", code, body)
	}
	if _, body := get(t, c, url); !strings.Contains(body, "<deviceName>Shop DVR</deviceName>") {
		t.Fatalf("name not changed: %s", body)
	}
	if code, body := put(`<DeviceInfo><deviceName>`); code != 400 || !strings.Contains(body, "badXmlContent") {
		t.Fatalf("bad XML: got %d %s", code, body)
	}
}

func TestWebPaths(t *testing.T) {
	d := start(t, Config{})
	base := "http://" + d.DialAddr(ServiceHTTP).String()
	plain := &http.Client{Timeout: 5 * time.Second}
	tests := []struct {
		method, path string
		client       *http.Client
		status       int
		body         string
	}{
		{"GET", "/", plain, 200, "DS-7208HQHI-K1"},
		{"GET", "/doc/page/login.asp", plain, 200, "Embedded Net DVR"},
		{"GET", "/nope", plain, 404, "Not Found"},
		{"GET", "/ISAPI/System/deviceInfo", plain, 401, "<lockStatus>unlock</lockStatus>"},
		{"GET", "/ISAPI/Nope", plain, 401, "userCheck"},
		{"GET", "/ISAPI/Nope", digestClient(d, "MD5", nil), 404, "<subStatusCode>notSupport</subStatusCode>"},
		{"GET", "/ISAPI/Security/userCheck", digestClient(d, "MD5", nil), 200, "<statusValue>200</statusValue>"},
		{"GET", "/ISAPI/Security/illegalLoginLock", digestClient(d, "MD5", nil), 200, "<maxIllegalLoginTimes>7</maxIllegalLoginTimes>"},
		{"PUT", "/SDK/webLanguage", plain, 200, "<statusCode>1</statusCode>"},
		{"POST", "/onvif/device_service", plain, 400, "WellFormed"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(`<?xml version="1.0"?><language>$(id)</language>`))
			res, err := tc.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status || !strings.Contains(string(b), tc.body) {
				t.Fatalf("got %d %q, want %d containing %q", res.StatusCode, b, tc.status, tc.body)
			}
			if got := res.Header.Get("Server"); got != "DNVRS-Webs" {
				t.Errorf("Server header: got %q, want DNVRS-Webs", got)
			}
		})
	}
	var hits int
	for _, r := range d.Requests() {
		if r.Path == "/SDK/webLanguage" && r.Method == "PUT" && r.Status == 200 && r.Service == ServiceHTTP {
			hits++
		}
	}
	if hits != 1 {
		t.Fatalf("request log: got %d PUT /SDK/webLanguage entries, want 1", hits)
	}
}

func TestHTTPS(t *testing.T) {
	d := start(t, Config{})
	pool := x509.NewCertPool()
	pool.AddCert(d.Certificate())
	c := digestClient(d, "SHA-256", &tls.Config{RootCAs: pool})
	code, body := get(t, c, "https://"+d.DialAddr(ServiceHTTPS).String()+"/ISAPI/System/deviceInfo")
	if code != 200 || !strings.Contains(body, "<model>DS-7208HQHI-K1</model>") {
		t.Fatalf("got %d %s", code, body)
	}
	// A client that does not trust the self-signed certificate fails.
	res, err := http.Get("https://" + d.DialAddr(ServiceHTTPS).String() + "/")
	if err == nil {
		res.Body.Close()
		t.Fatal("untrusted self-signed certificate accepted")
	}
	if !d.Certificate().IsCA || d.Certificate().Subject.CommonName != "127.0.0.1" {
		t.Errorf("certificate: got CN %q CA %v", d.Certificate().Subject.CommonName, d.Certificate().IsCA)
	}
}

// freePorts returns n distinct free TCP ports on loopback.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}
