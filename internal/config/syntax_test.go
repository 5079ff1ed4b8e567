package config

import (
	"strings"
	"testing"
)

// TestSyntaxErrorLine: a YAML syntax error is reported on the line that
// is wrong, with what to do, not on the line where its block began.
func TestSyntaxErrorLine(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		line int
		fix  string
	}{
		{"key indented one space too few", "version: 1\nrules:\n  - name: a\n    external_port: 80\n   internal_ip: 192.168.1.64\n    enabled: true\n",
			5, "indented differently"},
		{"key out-dented to the list's level", "version: 1\nrules:\n  - name: a\n    external_port: 80\n    internal_ip: 192.168.1.64\n  enabled: true\n  - name: b\n",
			6, "indented differently"},
		{"key indented too deep", "version: 1\nrules:\n  - name: a\n    external_port: 80\n      internal_ip: 192.168.1.64\n",
			5, "indented deeper"},
		{"tab", "version: 1\nrules:\n\t- name: a\n", 3, "spaces, not tabs"},
		{"unclosed list", "version: 1\nrules:\n  - name: a\n    external_port: 80\n    internal_ip: 192.168.1.64\n    allow: [192.0.2.0/24\n    enabled: true\n",
			0, "not closed"},
		{"starter with a bad indent", strings.Replace(starterForTest, "    internal_ip: 192.168.1.64\n    internal_port: 554", "    internal_ip: 192.168.1.64\n   internal_port: 554", 1),
			lineOf(starterForTest, "internal_port: 554"), "indented differently"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			p, ok := err.(Problem)
			if !ok {
				t.Fatalf("got %v, want one Problem", err)
			}
			if tt.line != 0 && p.Line != tt.line {
				t.Errorf("got line %d, want %d (%s)", p.Line, tt.line, p.Message)
			}
			if !strings.Contains(p.Message, tt.fix) {
				t.Errorf("got %q, want the fix %q", p.Message, tt.fix)
			}
		})
	}
}

// starterForTest is the shape of store.Starter (package config cannot
// import store): rules with a blank line between them.
const starterForTest = `version: 1
listen_address: 0.0.0.0

rules:
  - name: dvr-https
    protocol: tcp
    external_port: 443
    internal_ip: 192.168.1.64
    internal_port: 443
    enabled: false

  - name: dvr-rtsp
    protocol: tcp
    external_port: 554
    internal_ip: 192.168.1.64
    internal_port: 554
    enabled: false
`

func lineOf(s, sub string) int { return strings.Count(s[:strings.Index(s, sub)], "\n") + 1 }
