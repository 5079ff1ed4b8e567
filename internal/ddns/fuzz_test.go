package ddns

import "testing"

// FuzzParseDyndns2 feeds provider answers (untrusted bytes) to the
// dyndns2 parser: it must classify anything without panicking, and never
// call an unknown answer success.
func FuzzParseDyndns2(f *testing.F) {
	for _, s := range []string{
		"good 203.0.113.7", "nochg 203.0.113.7\r\n", "badauth", "911", "dnserr",
		"good 203.0.113.7\nnohost\n", "!donator", "", "\n\n", "<html>502 Bad Gateway</html>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := parseDyndns2(body)
		if r.kind == resultOK && r.answer != "good" && r.answer != "nochg" {
			t.Errorf("answer %q counted as success", body)
		}
	})
}
