package sim

import (
	"bytes"
	"html/template"
	"net/http"
	"strconv"
)

// loginPage is the device's web page. A real DVR serves a JavaScript
// application at /doc/page/login.asp; this one is a static page that
// identifies the model and lets the browser's own Digest prompt do the
// login, by linking to an ISAPI resource.
const loginPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Model}} - Login</title>
<style>
body{margin:0;font-family:Arial,Helvetica,sans-serif;background:#1c1f26;color:#e8e8e8}
header{background:#b00e12;padding:14px 24px;font-size:20px;font-weight:bold;letter-spacing:1px}
main{max-width:420px;margin:60px auto;background:#2a2e38;padding:28px 32px;border-radius:6px}
h1{font-size:18px;margin:0 0 4px}
p{font-size:13px;color:#b8bcc6}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 12px;font-size:13px}
dt{color:#8d93a0}
a.button{display:block;text-align:center;margin-top:22px;padding:10px;background:#b00e12;color:#fff;text-decoration:none;border-radius:4px}
code{font-size:12px;color:#ffd27a;word-break:break-all}
</style>
</head>
<body>
<header>Network Video Recorder</header>
<main>
<h1>{{.Name}}</h1>
<p>Simulated device (camgate sim). Log in with the device's user name and password.</p>
<dl>
<dt>Model</dt><dd id="model">{{.Model}}</dd>
<dt>Type</dt><dd>{{.Type}}</dd>
<dt>Serial No.</dt><dd>{{.Serial}}</dd>
<dt>Firmware</dt><dd>{{.Firmware}}</dd>
<dt>Channels</dt><dd>{{.Channels}}</dd>
</dl>
<a class="button" href="/ISAPI/System/deviceInfo">Login</a>
<p>Live view: <code>rtsp://&lt;user&gt;:&lt;password&gt;@{{.Host}}{{.RTSPPort}}/Streaming/Channels/101</code></p>
</main>
</body>
</html>
`

func (d *Device) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	t, err := template.New("login").Parse(loginPage)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	id := d.Identity()
	host := r.Host
	if h, _, ok := cutPort(host); ok {
		host = h
	}
	rtspPort := ""
	if ap := d.addrs[ServiceRTSP]; ap.IsValid() && ap.Port() != 554 {
		rtspPort = ":" + strconv.Itoa(int(ap.Port()))
	}
	var b bytes.Buffer
	err = t.Execute(&b, map[string]any{
		"Name": id.DeviceName, "Model": id.Model, "Type": id.DeviceType, "Serial": id.SerialNumber,
		"Firmware": id.FirmwareVersion + " " + id.FirmwareReleasedDate(), "Channels": id.channels(),
		"Host": host, "RTSPPort": rtspPort,
	})
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes())
}

// cutPort splits "host:port" or "[v6]:port"; ok is false without a port.
func cutPort(hostport string) (host, port string, ok bool) {
	for i := len(hostport) - 1; i >= 0; i-- {
		switch hostport[i] {
		case ':':
			h := hostport[:i]
			if len(h) >= 2 && h[0] == '[' && h[len(h)-1] == ']' {
				return h, hostport[i+1:], true
			}
			for j := 0; j < len(h); j++ {
				if h[j] == ':' {
					return hostport, "", false // bare IPv6
				}
			}
			return h, hostport[i+1:], true
		case ']':
			return hostport, "", false
		}
	}
	return hostport, "", false
}
