package rtsp_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
)

// The ONVIF rule: the DVR's web port 80 as external 8080. Its ONVIF
// answers name 198.19.0.64:80 and rtsp://198.19.0.64/...; through
// camgate they must name 198.18.0.1:8080 and the RTSP rule's 10554.
const onvifRule = `  - name: dvr-web
    external_port: 8080
    internal_ip: %s
    internal_port: 80
`

func webDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "web")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "onvif")); err != nil {
		t.Skipf("needs the onvif package in web/node_modules: run `npm ci` in %s (scripts/test.sh does)", dir)
	}
	return dir
}

func TestONVIFThroughCamgate(t *testing.T) {
	need(t, "node", "ffprobe", "curl")
	web := webDir(t)
	l := startLab(t, fmt.Sprintf(onvifRule, netlab.LANAddr))
	l.WaitTCP(l.WAN, net.JoinHostPort(netlab.GWWANAddr.String(), "8080"), 5*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := l.CommandContext(ctx, l.WAN, "node", filepath.Join(web, "onvif.mjs"), netlab.GWWANAddr.String(), "8080", "admin")
	cmd.Env = append(os.Environ(), "ONVIF_PASSWORD="+simPass)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("onvif.mjs: %v\n%s%s", err, out, stderr.String())
	}
	var res struct {
		Profiles []string          `json:"profiles"`
		Stream   string            `json:"stream"`
		Snapshot string            `json:"snapshot"`
		XAddrs   map[string]string `json:"xaddrs"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("onvif.mjs printed %q: %v", out, err)
	}
	t.Logf("agsh/onvif through camgate: %+v", res)
	wantStream := "rtsp://" + netlab.GWWANAddr.String() + ":" + strconv.Itoa(extPort) + "/Streaming/Channels/101"
	if len(res.Profiles) < 1 || !strings.HasPrefix(res.Stream, wantStream) {
		t.Fatalf("stream URI %q, want %s...", res.Stream, wantStream)
	}
	if !strings.HasPrefix(res.Snapshot, "http://"+netlab.GWWANAddr.String()+":8080/") {
		t.Errorf("snapshot URI %q, want it on camgate's 8080", res.Snapshot)
	}
	for k, v := range res.XAddrs {
		if !strings.HasPrefix(v, "http://"+netlab.GWWANAddr.String()+":8080/") {
			t.Errorf("service %s at %q, want camgate's 8080", k, v)
		}
	}

	// The stream URI plays, over UDP.
	u := strings.Replace(res.Stream, "rtsp://", "rtsp://admin:"+simPass+"@", 1)
	l.probe(t, l.WAN, []string{"-rtsp_transport", "udp"}, u)

	// The raw answers carry no LAN address: GetCapabilities, GetServices
	// and GetStreamUri, sent by curl with a WS-Security header made here.
	for _, action := range []string{"GetCapabilities", "GetServices", "GetProfiles", "GetStreamUri", "GetSnapshotUri"} {
		body := soapCall(action)
		out, err := l.Command(l.WAN, "curl", "-sS", "--max-time", "5", "-i", "-H", "Content-Type: application/soap+xml",
			"--data-binary", body, "http://"+netlab.GWWANAddr.String()+":8080/onvif/device_service").CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", action, err, out)
		}
		if !strings.Contains(string(out), action+"Response") {
			t.Fatalf("%s: no answer:\n%s", action, out)
		}
		if strings.Contains(string(out), netlab.LANAddr.String()) {
			t.Fatalf("%s answer carries the LAN address:\n%s", action, out)
		}
	}
}

// soapCall builds an ONVIF request with a WS-Security UsernameToken.
func soapCall(action string) string {
	nonce := []byte("0123456789abcdef")
	created := time.Now().UTC().Format(time.RFC3339)
	digest := usernameTokenDigest(nonce, created, simPass)
	ns := "http://www.onvif.org/ver10/device/wsdl"
	arg := ""
	if strings.HasSuffix(action, "Uri") || action == "GetProfiles" {
		ns = "http://www.onvif.org/ver10/media/wsdl"
	}
	if strings.HasSuffix(action, "Uri") {
		arg = "<ProfileToken>Profile_1</ProfileToken>"
	}
	if action == "GetCapabilities" {
		arg = "<Category>All</Category>"
	}
	if action == "GetServices" {
		arg = "<IncludeCapability>false</IncludeCapability>"
	}
	return `<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header>` +
		`<Security xmlns="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"><UsernameToken>` +
		`<Username>admin</Username><Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">` +
		digest + `</Password><Nonce>` + b64(nonce) + `</Nonce><Created xmlns="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">` +
		created + `</Created></UsernameToken></Security></s:Header><s:Body><` + action + ` xmlns="` + ns + `">` + arg + `</` + action + `></s:Body></s:Envelope>`
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func usernameTokenDigest(nonce []byte, created, pass string) string {
	h := sha1.New()
	h.Write(nonce)
	h.Write([]byte(created))
	h.Write([]byte(pass))
	return b64(h.Sum(nil))
}
