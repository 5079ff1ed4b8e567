package check

import (
	"net/http"
	"testing"
)

func FuzzParseRTSPStatus(f *testing.F) {
	for _, s := range []string{"RTSP/1.0 200 OK", "RTSP/1.0 401 Unauthorized", "HTTP/1.1 400 Bad Request", "RTSP/1.0 ", "RTSP/ 999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		st, ok := ParseRTSPStatus(line)
		if ok && (st.Code < 100 || st.Code > 599) {
			t.Fatalf("accepted status %d from %q", st.Code, line)
		}
	})
}

func FuzzHikvisionMarkers(f *testing.F) {
	f.Add("App-webs/", `Digest realm="IP Camera(21388)", nonce="x"`, "/doc/page/login.asp", "<html>hikvision</html>")
	f.Add("webserver", `Basic realm="DS-7608NI"`, "", "")
	f.Add("", `Digest realm="unterminated`, "", "")
	f.Fuzz(func(t *testing.T, server, auth, location, body string) {
		h := http.Header{}
		h.Set("Server", server)
		h.Set("Www-Authenticate", auth)
		h.Set("Location", location)
		HikvisionMarkers(h, []byte(body))
		realmOf(auth)
	})
}
