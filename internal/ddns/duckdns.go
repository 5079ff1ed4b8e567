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
	server, err := url.Parse(d.UpdateServer())
	if err != nil {
		return result{kind: resultFatal, answer: "not sent", err: "ddns.server is not a URL", fix: "check ddns.server"}
	}
	var domains []string
	for _, h := range strings.Split(d.Hostname, ",") {
		if h = strings.TrimSuffix(strings.TrimSpace(h), ".duckdns.org"); h != "" {
			domains = append(domains, h)
		}
	}
	q := server.Query()
	q.Set("domains", strings.Join(domains, ","))
	q.Set("token", tok)
	if ip.Is4() {
		q.Set("ip", ip.String())
	} else {
		q.Set("ipv6", ip.String())
	}
	server.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server.String(), nil)
	if err != nil {
		return result{kind: resultFatal, answer: "not sent", err: "ddns.server is not a URL", fix: "check ddns.server"}
	}
	code, body, err := u.get(req)
	switch {
	case err != nil:
		return netError(err)
	case code != http.StatusOK:
		return httpError(server.Host, code)
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
