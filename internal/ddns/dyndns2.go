package ddns

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/camgate/camgate/internal/config"
)

// dyndns2 sends one update in the dyndns2 protocol (Dyn's "Remote Access
// Update API", which No-IP and most providers copy):
//
//	GET /nic/update?hostname=a.example.net,b.example.net&myip=203.0.113.7
//	Authorization: Basic ...
//
// and reads one answer line per host name.
func (u *Updater) dyndns2(ctx context.Context, d config.DDNS, ip netip.Addr) result {
	pass, err := u.readSecret("password_file", d.PasswordFile)
	if err != nil {
		return secretError(err)
	}
	params := url.Values{"hostname": {strings.ReplaceAll(d.Hostname, " ", "")}, "myip": {ip.String()}}
	code, body, host, fail := u.call(ctx, d.UpdateServer(), params, d.Username, pass)
	switch {
	case fail != nil:
		return *fail
	case code == http.StatusOK:
		return parseDyndns2(body)
	case code == http.StatusUnauthorized:
		// No-IP answers a wrong password with 401 and "badauth".
		return dyndns2Answer("badauth")
	default:
		return httpError(host, code)
	}
}

// parseDyndns2 reads a dyndns2 answer: one line per host name, each a
// code and, for good and nochg, the address. The worst line wins: a fatal
// code over a retry over success.
func parseDyndns2(body string) result {
	var worst *result
	for _, line := range strings.Split(body, "\n") {
		code, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if code == "" {
			continue
		}
		r := dyndns2Answer(code)
		if worst == nil || r.kind > worst.kind {
			worst = &r
		}
	}
	if worst == nil {
		return result{kind: resultRetry, answer: "empty", err: "the provider sent an empty answer", fix: "camgate retries with backoff"}
	}
	return *worst
}

// dyndns2Fatal are the answers after which the protocol forbids
// retrying the same update: each with what went wrong and the fix.
var dyndns2Fatal = map[string][2]string{
	"badauth":  {"the provider refused the user name or password", "check ddns.username and the password in ddns.password_file (No-IP: your account e-mail or DDNS key), then reload"},
	"!donator": {"the update needs a paid account feature", "remove the option your plan lacks, or upgrade the account"},
	"notfqdn":  {"the host name is not a fully qualified domain name", "set ddns.hostname to the full name, such as mycams.ddns.net"},
	"nohost":   {"the host name does not exist in this account", "create the host name at the provider, or correct ddns.hostname"},
	"numhost":  {"too many host names in one update", "list fewer host names in ddns.hostname"},
	"abuse":    {"the provider blocked this host name for abuse", "unblock it in the provider's web page, then reload; camgate does not retry until then"},
	"badagent": {"the provider refused camgate's client", "report this to camgate's maintainers"},
}

// dyndns2Answer gives each return code the handling the protocol asks for.
func dyndns2Answer(code string) result {
	r := result{answer: code}
	if f, ok := dyndns2Fatal[code]; ok {
		r.kind, r.err, r.fix = resultFatal, f[0], f[1]
		return r
	}
	switch code {
	case "good":
		r.kind = resultOK
	case "nochg":
		// Already set to this address. Fine once; repeated nochg
		// updates count as abuse, which is why camgate only updates on
		// a change.
		r.kind = resultOK
	case "911", "dnserr":
		r.kind, r.serverError = resultRetry, true
		r.err, r.fix = fmt.Sprintf("the provider reports a problem on its side (%s)", code), "nothing to do here; camgate waits at least 30 minutes, as the protocol asks, then retries"
	default:
		if len(code) > 32 {
			code = code[:32]
		}
		r.answer = code
		r.kind, r.err, r.fix = resultRetry, fmt.Sprintf("unexpected answer %q", code), "check ddns.server is a dyndns2 update URL; camgate retries with backoff"
	}
	return r
}
