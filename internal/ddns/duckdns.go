package ddns

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/camgate/camgate/internal/config"
)

// duckdns sends one update to DuckDNS:
//
//	GET /update?domains=mycams&token=...&ip=203.0.113.7   (ipv6= for IPv6)
//
// which answers "OK" or "KO" (a bad token or a sub-domain not in the
// account: retrying does not help).
func (u *Updater) duckdns(ctx context.Context, d config.DDNS, ip netip.Addr) result {
	tok, err := u.readSecret("token_file", d.TokenFile)
	if err != nil {
		return secretError(err)
	}
	var domains []string
	for _, h := range strings.Split(d.Hostname, ",") {
		if h = strings.TrimSuffix(strings.TrimSpace(h), ".duckdns.org"); h != "" {
			domains = append(domains, h)
		}
	}
	params := url.Values{"domains": {strings.Join(domains, ",")}, "token": {tok}}
	if ip.Is4() {
		params.Set("ip", ip.String())
	} else {
		params.Set("ipv6", ip.String())
	}
	code, body, host, fail := u.call(ctx, d.UpdateServer(), params, "", "")
	switch {
	case fail != nil:
		return *fail
	case code != http.StatusOK:
		return httpError(host, code)
	}
	switch answer, _, _ := strings.Cut(body, "\n"); strings.TrimSpace(answer) {
	case "OK":
		return result{kind: resultOK, answer: "OK"}
	case "KO":
		return result{kind: resultFatal, answer: "KO", err: "DuckDNS refused the update (a wrong token, or a sub-domain that is not in the account)",
			fix: "check the token in ddns.token_file and that ddns.hostname is one of your DuckDNS sub-domains, then reload"}
	default:
		return result{kind: resultRetry, answer: "unexpected", err: "DuckDNS sent an unexpected answer", fix: "camgate retries with backoff"}
	}
}
