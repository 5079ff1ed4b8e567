package hikvision

import (
	"context"
	"net/http"
	"strings"

	"github.com/icholy/digest"
)

// ProbeResult is what a device shows without credentials.
type ProbeResult struct {
	// RootStatus is the HTTP status of GET /.
	RootStatus int `json:"root_status"`
	// Server is the Server header, if any (e.g. "App-webs/", "webserver").
	Server string `json:"server,omitempty"`
	// ISAPIStatus is the HTTP status of an unauthenticated GET of
	// /ISAPI/System/deviceInfo: 401 on a real device.
	ISAPIStatus int `json:"isapi_status"`
	// Realm is the Digest realm offered there, e.g. "IP Camera(12345)".
	Realm string `json:"realm,omitempty"`
	// Hikvision reports whether the answers look like a Hikvision device.
	Hikvision bool `json:"hikvision"`
	// Locked is set when the device says this address is locked out.
	Locked bool `json:"locked,omitempty"`
	// LoginsLeft is how many failed logins the device still takes from
	// this address before it locks it (retryLoginTime in the 401's body);
	// -1 when the device does not say.
	LoginsLeft int `json:"logins_left"`
}

// Probe checks, without sending any credentials (so it can never count
// towards the lockout), whether a Hikvision web server answers: GET / and
// an unauthenticated GET of the deviceInfo document, whose 401 carries
// the device's Digest realm.
func (c *Client) Probe(ctx context.Context) (ProbeResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res := ProbeResult{LoginsLeft: -1}
	root := *c.base
	root.Path = c.base.Path + "/"
	resp, body, err := c.roundTrip(ctx, &root, "")
	if err != nil {
		return res, err
	}
	res.RootStatus, res.Server = resp.StatusCode, resp.Header.Get("Server")
	page := strings.ToLower(string(body))
	if strings.Contains(page, "hikvision") || strings.Contains(page, "doc/page/login.asp") ||
		strings.Contains(strings.ToLower(res.Server), "app-webs") || strings.Contains(strings.ToLower(resp.Header.Get("Location")), "doc/page") {
		res.Hikvision = true
	}

	isapi := *c.base
	isapi.Path = c.base.Path + PathDeviceInfo
	resp, body, err = c.roundTrip(ctx, &isapi, "")
	if err != nil {
		return res, err
	}
	res.ISAPIStatus = resp.StatusCode
	if chal, err := digest.FindChallenge(resp.Header); err == nil {
		res.Realm = chal.Realm
		if strings.HasPrefix(chal.Realm, "IP Camera(") || strings.Contains(strings.ToLower(chal.Realm), "hikvision") ||
			strings.HasPrefix(chal.Realm, "DS-") {
			res.Hikvision = true
		}
	}
	if resp.StatusCode == http.StatusOK {
		if _, err := ParseDeviceInfo(body); err == nil {
			res.Hikvision = true // answered without authentication: the audit's business
		}
	}
	res.Locked = c.lockFrom(resp, body) != nil
	if st, err := ParseStatus(body); err == nil && st.IsStatus() && st.LockStatus != "" && !res.Locked {
		res.LoginsLeft = st.RetryLoginTime
	}
	if res.Locked {
		res.LoginsLeft = 0
	}
	return res, nil
}
