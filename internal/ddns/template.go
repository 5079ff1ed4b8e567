package ddns

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/camgate/camgate/internal/config"
)

// template sends one update to a provider given as a URL template: {ip},
// {hostname} and {token} are replaced (query-escaped) and the URL is
// fetched with GET. Any 2xx is success; 401, 403 and other 4xx stop
// updates; 429 and 5xx back off.
func (u *Updater) template(ctx context.Context, d config.DDNS, ip netip.Addr) result {
	var tok string
	if strings.Contains(d.URL, "{token}") {
		var err error
		if tok, err = u.readSecret("token_file", d.TokenFile); err != nil {
			return secretError(err)
		}
	}
	raw := strings.NewReplacer("{ip}", url.QueryEscape(ip.String()), "{hostname}", url.QueryEscape(d.Hostname), "{token}", url.QueryEscape(tok)).Replace(d.URL)
	code, _, host, fail := u.call(ctx, raw, nil, "", "")
	switch {
	case fail != nil:
		return *fail
	case code >= 200 && code < 300:
		return result{kind: resultOK, answer: http.StatusText(code)}
	default:
		return httpError(host, code)
	}
}
