package sim

import (
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// A minimal ONVIF device and media service (ONVIF Core and Media 1.0
// specifications, SOAP 1.2), enough for ONVIF clients (Home Assistant,
// NVR software, agsh/onvif) to find the profiles and the stream URI:
// GetSystemDateAndTime (unauthenticated, as the standard requires),
// GetCapabilities, GetServices, GetDeviceInformation, GetProfiles,
// GetVideoSources, GetStreamUri and GetSnapshotUri. Every other action
// gets ActionNotSupported.
//
// As real firmware does, every address in the answers (XAddr, Uri) is
// the device's own LAN address, whatever Host the client used: that is
// what breaks ONVIF clients outside the LAN (agsh/onvif #170).
//
// Authentication is WS-Security UsernameToken with PasswordDigest
// (Base64(SHA-1(nonce + created + password)), ONVIF Core §5.12).

// onvifMaxBody bounds a SOAP request.
const onvifMaxBody = 64 << 10

// soapRequest is what the simulator reads from a request envelope.
type soapRequest struct {
	action  string // local name of the Body's first element
	profile string // ProfileToken, for GetStreamUri and GetSnapshotUri
	user    string
	pass    string // the PasswordDigest
	nonce   string
	created string
}

// parseSOAP reads a request envelope with encoding/xml (no DTDs, no
// entity expansion beyond XML's own).
func parseSOAP(body []byte) (soapRequest, error) {
	var req soapRequest
	d := xml.NewDecoder(strings.NewReader(string(body)))
	var path []string
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return req, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			path = append(path, t.Name.Local)
			if len(path) > 32 {
				return req, errors.New("soap: nested too deep")
			}
			if len(path) == 3 && path[1] == "Body" && req.action == "" {
				req.action = t.Name.Local
			}
		case xml.EndElement:
			if len(path) > 0 {
				path = path[:len(path)-1]
			}
		case xml.CharData:
			if len(path) == 0 {
				continue
			}
			v := strings.TrimSpace(string(t))
			switch path[len(path)-1] {
			case "Username":
				req.user = v
			case "Password":
				req.pass = v
			case "Nonce":
				req.nonce = v
			case "Created":
				req.created = v
			case "ProfileToken":
				req.profile = v
			}
		}
	}
	if req.action == "" {
		return req, errors.New("soap: no action in the body")
	}
	return req, nil
}

// usernameTokenOK checks a UsernameToken digest.
func usernameTokenOK(req soapRequest, user, pass string) bool {
	if req.user != user || req.nonce == "" || req.created == "" {
		return false
	}
	nonce, err := base64.StdEncoding.DecodeString(req.nonce)
	if err != nil {
		return false
	}
	h := sha1.New()
	h.Write(nonce)
	h.Write([]byte(req.created))
	h.Write([]byte(pass))
	want := base64.StdEncoding.EncodeToString(h.Sum(nil))
	return subtle.ConstantTimeCompare([]byte(want), []byte(req.pass)) == 1
}

const soapEnvelope = `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
	`<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema" ` +
	`xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" ` +
	`xmlns:ter="http://www.onvif.org/ver10/error"><env:Body>%s</env:Body></env:Envelope>`

func soapFault(w http.ResponseWriter, status int, code, sub, reason string) {
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, soapEnvelope, `<env:Fault><env:Code><env:Value>env:`+code+`</env:Value><env:Subcode><env:Value>ter:`+sub+
		`</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">`+reason+`</env:Text></env:Reason></env:Fault>`)
}

// handleONVIF serves the device service (/onvif/device_service) and the
// media service (/onvif/Media).
func (d *Device) handleONVIF(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		soapFault(w, http.StatusMethodNotAllowed, "Sender", "InvalidArgVal", "POST a SOAP envelope")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, onvifMaxBody+1))
	if err != nil || len(body) > onvifMaxBody {
		soapFault(w, http.StatusBadRequest, "Sender", "InvalidArgVal", "request too large")
		return
	}
	req, err := parseSOAP(body)
	if err != nil {
		soapFault(w, http.StatusBadRequest, "Sender", "WellFormed", "malformed SOAP envelope")
		return
	}
	if req.action != "GetSystemDateAndTime" {
		src := remoteAddr(r).Addr()
		if locked, _ := d.locks.locked(src); locked || !usernameTokenOK(req, d.user, d.password) {
			if !locked && req.user != "" {
				d.locks.fail(src)
			}
			soapFault(w, http.StatusUnauthorized, "Sender", "NotAuthorized", "Sender not Authorized")
			return
		}
		d.locks.succeed(src)
	}
	own := d.ownAddr(localAddr(r), 0, remoteAddr(r).Addr())
	out, ok := d.onvifAnswer(req, own)
	if !ok {
		soapFault(w, http.StatusInternalServerError, "Receiver", "ActionNotSupported", "The requested action is not supported")
		return
	}
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	fmt.Fprintf(w, soapEnvelope, out)
}

// onvifAnswer renders the body of an action's answer, naming the device
// by its LAN address own.
func (d *Device) onvifAnswer(req soapRequest, own netip.Addr) (string, bool) {
	id := d.Identity()
	web := "http://" + hostPort(own, d.addrs[ServiceHTTP].Port(), 80)
	device, media := web+"/onvif/device_service", web+"/onvif/Media"
	switch req.action {
	case "GetSystemDateAndTime":
		now := time.Now().UTC()
		return fmt.Sprintf(`<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType>`+
			`<tt:DaylightSavings>false</tt:DaylightSavings><tt:UTCDateTime><tt:Time><tt:Hour>%d</tt:Hour><tt:Minute>%d</tt:Minute><tt:Second>%d</tt:Second></tt:Time>`+
			`<tt:Date><tt:Year>%d</tt:Year><tt:Month>%d</tt:Month><tt:Day>%d</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>`,
			now.Hour(), now.Minute(), now.Second(), now.Year(), int(now.Month()), now.Day()), true
	case "GetCapabilities":
		return `<tds:GetCapabilitiesResponse><tds:Capabilities>` +
			`<tt:Device><tt:XAddr>` + device + `</tt:XAddr></tt:Device>` +
			`<tt:Media><tt:XAddr>` + media + `</tt:XAddr><tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>` +
			`<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>` +
			`</tds:Capabilities></tds:GetCapabilitiesResponse>`, true
	case "GetServices":
		svc := func(ns, addr string) string {
			return `<tds:Service><tds:Namespace>` + ns + `</tds:Namespace><tds:XAddr>` + addr +
				`</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>`
		}
		return `<tds:GetServicesResponse>` + svc("http://www.onvif.org/ver10/device/wsdl", device) +
			svc("http://www.onvif.org/ver10/media/wsdl", media) + `</tds:GetServicesResponse>`, true
	case "GetDeviceInformation":
		return `<tds:GetDeviceInformationResponse><tds:Manufacturer>HIKVISION</tds:Manufacturer><tds:Model>` + xmlText(id.Model) +
			`</tds:Model><tds:FirmwareVersion>` + xmlText(id.FirmwareVersion+" "+id.FirmwareReleasedDate()) +
			`</tds:FirmwareVersion><tds:SerialNumber>` + xmlText(id.SerialNumber) + `</tds:SerialNumber><tds:HardwareId>88</tds:HardwareId></tds:GetDeviceInformationResponse>`, true
	case "GetVideoSources":
		c := d.clips[streamMain]
		return fmt.Sprintf(`<trt:GetVideoSourcesResponse><trt:VideoSources token="VideoSource_1"><tt:Framerate>%d</tt:Framerate>`+
			`<tt:Resolution><tt:Width>%d</tt:Width><tt:Height>%d</tt:Height></tt:Resolution></trt:VideoSources></trt:GetVideoSourcesResponse>`,
			c.fps, c.width, c.height), true
	case "GetProfiles":
		var b strings.Builder
		b.WriteString(`<trt:GetProfilesResponse>`)
		for _, k := range []streamKind{streamMain, streamSub} {
			c := d.clips[k]
			n := strconv.Itoa(int(k))
			fmt.Fprintf(&b, `<trt:Profiles token="Profile_%s" fixed="true"><tt:Name>%s</tt:Name>`+
				`<tt:VideoSourceConfiguration token="VideoSourceToken"><tt:Name>VideoSourceConfig</tt:Name><tt:UseCount>2</tt:UseCount>`+
				`<tt:SourceToken>VideoSource_1</tt:SourceToken><tt:Bounds x="0" y="0" width="%d" height="%d"/></tt:VideoSourceConfiguration>`+
				`<tt:VideoEncoderConfiguration token="VideoEncoderToken_%s"><tt:Name>VideoEncoder_%s</tt:Name><tt:UseCount>1</tt:UseCount>`+
				`<tt:Encoding>H264</tt:Encoding><tt:Resolution><tt:Width>%d</tt:Width><tt:Height>%d</tt:Height></tt:Resolution>`+
				`<tt:Quality>3</tt:Quality><tt:RateControl><tt:FrameRateLimit>%d</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval>`+
				`<tt:BitrateLimit>1024</tt:BitrateLimit></tt:RateControl></tt:VideoEncoderConfiguration></trt:Profiles>`,
				n, map[streamKind]string{streamMain: "mainStream", streamSub: "subStream"}[k], c.width, c.height, n, n, c.width, c.height, c.fps)
		}
		b.WriteString(`</trt:GetProfilesResponse>`)
		return b.String(), true
	case "GetStreamUri", "GetSnapshotUri":
		k := streamMain
		switch req.profile {
		case "Profile_1", "":
		case "Profile_2":
			k = streamSub
		default:
			return "", false
		}
		uri := "rtsp://" + hostPort(own, d.addrs[ServiceRTSP].Port(), 554) + "/Streaming/Channels/10" + strconv.Itoa(int(k)) +
			"?transportmode=unicast&amp;profile=Profile_" + strconv.Itoa(int(k))
		if req.action == "GetSnapshotUri" {
			uri = web + "/onvif-http/snapshot?Profile_" + strconv.Itoa(int(k))
		}
		return `<trt:` + req.action + `Response><trt:MediaUri><tt:Uri>` + uri + `</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>` +
			`<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:` + req.action + `Response>`, true
	}
	return "", false
}

// hostPort renders own:port, leaving out the scheme's default port.
func hostPort(own netip.Addr, port, def uint16) string {
	if port == def || port == 0 {
		if own.Is6() {
			return "[" + own.String() + "]"
		}
		return own.String()
	}
	return netip.AddrPortFrom(own, port).String()
}

func xmlText(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
