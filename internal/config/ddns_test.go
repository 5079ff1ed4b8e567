package config

import (
	"strings"
	"testing"
)

func TestValidateDDNS(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		field string // "" means valid
		want  string // in the message
	}{
		{"off by default", "", "", ""},
		{"noip", "ddns: {provider: noip, hostname: mycams.ddns.net, username: me, password_file: pw}", "", ""},
		{"duckdns", "ddns: {provider: duckdns, hostname: mycams, token_file: tok}", "", ""},
		{"url", "ddns: {provider: url, url: \"https://dyn.example.net/u?h={hostname}&ip={ip}\"}", "", ""},
		{"unknown provider", "ddns: {provider: hidns, hostname: x.example.net}", "ddns.provider", "is not off, dyndns2"},
		{"dyndns2 without server", "ddns: {provider: dyndns2, hostname: a.example.net, username: me, password_file: pw}", "ddns.server", "update URL"},
		{"no password file", "ddns: {provider: noip, hostname: a.example.net, username: me}", "ddns.password_file", "never the password itself"},
		{"duckdns without token", "ddns: {provider: duckdns, hostname: mycams}", "ddns.token_file", "DuckDNS token"},
		{"password in the server URL", "ddns: {provider: dyndns2, server: \"https://me:pw@dyn.example.net/nic/update\", hostname: a.example.net, username: me, password_file: pw}", "ddns.server", "use username and password_file"},
		{"url without {ip}", "ddns: {provider: url, url: \"https://dyn.example.net/u\"}", "ddns.url", "has no {ip}"},
		{"url token without file", "ddns: {provider: url, url: \"https://dyn.example.net/u?ip={ip}&k={token}\"}", "ddns.token_file", "{token}"},
		{"interval too short", "ddns: {provider: duckdns, hostname: mycams, token_file: tok, interval: 5s}", "ddns.interval", "at least 30s"},
		{"bad hostname", "ddns: {provider: duckdns, hostname: \"my cams\", token_file: tok}", "ddns.hostname", "not a host name"},
		{"password in the file is refused", "ddns: {provider: noip, hostname: a.example.net, username: me, password: hunter2}", "", "password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load([]byte("version: 1\nrules: []\n" + tt.yaml + "\n"))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got valid, want a problem with %s saying %q", tt.field, tt.want)
			}
			var hit bool
			for _, p := range ProblemsOf(err) {
				if (tt.field == "" || p.Field == tt.field) && strings.Contains(p.Error(), tt.want) {
					hit = true
				}
			}
			if !hit {
				t.Errorf("got %v, want a problem with %q saying %q", err, tt.field, tt.want)
			}
		})
	}
}
