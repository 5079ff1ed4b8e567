package hikvision

import (
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// Status is what a device says when it does not hand over the document
// asked for: an ISAPI <ResponseStatus> (statusCode, subStatusCode...), or
// the <userCheck> body newer firmware sends with a 401, which carries the
// illegal-login-lock state (lockStatus, unlockTime, retryLoginTime).
// Fields are matched by local name anywhere in the document.
type Status struct {
	// Root is the root element's local name.
	Root          string `json:"root,omitempty"`
	RequestURL    string `json:"request_url,omitempty"`
	StatusCode    int    `json:"status_code,omitempty"`
	StatusString  string `json:"status_string,omitempty"`
	SubStatusCode string `json:"sub_status_code,omitempty"`
	ErrorCode     int    `json:"error_code,omitempty"`
	ErrorMsg      string `json:"error_msg,omitempty"`
	// LockStatus is "lock" or "unlock" on devices that report it.
	LockStatus string `json:"lock_status,omitempty"`
	// UnlockTime is how long the lock still lasts; zero if not reported.
	UnlockTime time.Duration `json:"unlock_time,omitempty"`
	// RetryLoginTime is how many logins are left before the lock, as
	// third-party clients read it; -1 if not reported.
	RetryLoginTime int `json:"retry_login_time"`
}

// statusFields are the leaves ParseStatus collects (lower-cased).
var statusFields = []string{
	"requesturl", "statuscode", "statusstring", "substatuscode", "errorcode", "errormsg",
	"lockstatus", "unlocktime", "retrylogintime", "statusvalue",
}

// ParseStatus reads a ResponseStatus or userCheck document. It fails only
// when data is not XML at all; an XML document without any status field
// gives a Status whose IsStatus is false.
func ParseStatus(data []byte) (Status, error) {
	if len(data) > maxDoc {
		data = data[:maxDoc]
	}
	root, leaves, err := scanLeaves(data, statusFields)
	if err != nil {
		return Status{}, err
	}
	st := Status{
		Root:           root,
		RequestURL:     leaves["requesturl"],
		StatusString:   leaves["statusstring"],
		SubStatusCode:  leaves["substatuscode"],
		ErrorMsg:       leaves["errormsg"],
		LockStatus:     leaves["lockstatus"],
		RetryLoginTime: -1,
	}
	st.StatusCode, _ = strconv.Atoi(leaves["statuscode"])
	if st.StatusCode == 0 {
		st.StatusCode, _ = strconv.Atoi(leaves["statusvalue"]) // userCheck spelling
	}
	if v, err := strconv.ParseInt(leaves["errorcode"], 0, 64); err == nil {
		st.ErrorCode = int(v)
	}
	if n, err := strconv.Atoi(leaves["unlocktime"]); err == nil && n > 0 {
		st.UnlockTime = time.Duration(n) * time.Second
	}
	if n, err := strconv.Atoi(leaves["retrylogintime"]); err == nil && n >= 0 {
		st.RetryLoginTime = n
	}
	return st, nil
}

// IsStatus reports whether the document looked like a status answer.
func (s Status) IsStatus() bool {
	return strings.EqualFold(s.Root, "ResponseStatus") || strings.EqualFold(s.Root, "userCheck") ||
		s.StatusCode != 0 || s.SubStatusCode != "" || s.LockStatus != ""
}

// mentionsLock reports whether s speaks of a lock: "lock", "locked",
// "lockout", "userLocked", "deviceLocked", "IP blocked"... but not
// "unlock"/"unlocked" or "clock".
func mentionsLock(s string) bool {
	l := strings.ToLower(s)
	for i := 0; i < len(l); {
		j := strings.Index(l[i:], "lock")
		if j < 0 {
			return false
		}
		k := i + j
		if !strings.HasSuffix(l[:k], "un") && !strings.HasSuffix(l[:k], "c") {
			return true
		}
		i = k + len("lock")
	}
	return false
}

// Locked reports whether the status says this source is locked out.
func (s Status) Locked() bool {
	switch strings.ToLower(strings.TrimSpace(s.LockStatus)) {
	case "lock", "locked", "true":
		return true
	case "unlock", "unlocked", "false":
		return false
	}
	for _, v := range []string{s.SubStatusCode, s.StatusString, s.ErrorMsg} {
		if mentionsLock(v) {
			return true
		}
	}
	return false
}

// scanLeaves walks an XML document and returns the root's local name and
// the text of the first element with each wanted local name (keys
// lower-cased), at any depth.
func scanLeaves(data []byte, want []string) (string, map[string]string, error) {
	d := newDecoder(data)
	d.Strict = false // status bodies from embedded web servers are not always well-formed
	var root, cur string
	var text strings.Builder
	leaves := map[string]string{}
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w] = true
	}
	for depth := 0; ; {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			if root == "" {
				return "", nil, err
			}
			break // keep what was read before the damage
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && root == "" {
				root = t.Name.Local
			}
			depth++
			cur = strings.ToLower(t.Name.Local)
			text.Reset()
		case xml.CharData:
			if text.Len() < 4096 {
				text.Write(t)
			}
		case xml.EndElement:
			depth--
			name := strings.ToLower(t.Name.Local)
			if name == cur && wanted[name] {
				if _, seen := leaves[name]; !seen {
					leaves[name] = strings.TrimSpace(text.String())
				}
			}
			cur = ""
		}
	}
	if root == "" {
		return "", nil, errors.New("no XML element")
	}
	return root, leaves, nil
}
