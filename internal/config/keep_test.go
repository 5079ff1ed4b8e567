package config

import (
	"strings"
	"testing"
)

const commented = `# Site: the shop on Main Street.
version: 1
listen_address: 0.0.0.0 # every interface

rules:
  # Front door camera, HTTP only.
  - name: door-web
    external_port: 8082
    internal_ip: 192.168.1.64 # ask Sam before changing
    allow: [203.0.113.0/24, 198.51.100.7]

  # Recorder live video.
  - name: nvr-rtsp
    external_port: 554
    internal_ip: 192.168.1.65
    deny:
      - 192.0.2.0/24 # the old office
`

func TestMarshalKeepingKeepsComments(t *testing.T) {
	cfg, err := Load([]byte(commented))
	if err != nil {
		t.Fatal(err)
	}
	// The owner's edits through camgate: one rule changed, one added,
	// the list order kept.
	cfg.Rules[0].InternalIP = "192.168.1.70"
	cfg.Rules = append(cfg.Rules, Rule{Name: "nvr-https", ExternalPort: PortRange{First: 443, Last: 443}, InternalIP: "192.168.1.65"})
	out, err := MarshalKeeping([]byte(commented), cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, want := range []string{
		"# Site: the shop on Main Street.\nversion: 1\n",
		"listen_address: 0.0.0.0 # every interface\n",
		"  # Front door camera, HTTP only.\n  - name: door-web\n",
		"    internal_ip: 192.168.1.70 # ask Sam before changing\n",
		"    allow: [203.0.113.0/24, 198.51.100.7]\n",
		"  # Recorder live video.\n  - name: nvr-rtsp\n",
		"      - 192.0.2.0/24 # the old office\n",
		"  - name: nvr-https\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rewrite lost %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "camgate rewrites this file") {
		t.Errorf("rewrite added camgate's header above the owner's:\n%s", got)
	}
	again, err := Load(out)
	if err != nil {
		t.Fatalf("rewrite does not load: %v\n%s", err, got)
	}
	if a, b := mustMarshal(t, cfg), mustMarshal(t, again); string(a) != string(b) {
		t.Errorf("rewrite changed the config:\n%s\nbecame\n%s", a, b)
	}
}

func TestMarshalKeepingFollowsRulesByName(t *testing.T) {
	cfg, err := Load([]byte(commented))
	if err != nil {
		t.Fatal(err)
	}
	// Remove door-web and move nvr-rtsp to the front: door-web's comments
	// go with it, nvr-rtsp's follow it. A deny entry added in front of the
	// commented one leaves the comment on its entry.
	cfg.Rules = cfg.Rules[1:]
	cfg.Rules[0].Deny = append([]string{"192.0.2.99"}, cfg.Rules[0].Deny...)
	out, err := MarshalKeeping([]byte(commented), cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	if strings.Contains(got, "Front door") || strings.Contains(got, "ask Sam") {
		t.Errorf("a removed rule's comments survived:\n%s", got)
	}
	if !strings.Contains(got, "  # Recorder live video.\n  - name: nvr-rtsp\n") {
		t.Errorf("the remaining rule lost its comment:\n%s", got)
	}
	if !strings.Contains(got, "      - 192.0.2.99\n      - 192.0.2.0/24 # the old office\n") {
		t.Errorf("a list entry's comment did not stay with its entry:\n%s", got)
	}
}

func TestMarshalKeepingWithoutAFile(t *testing.T) {
	cfg, err := Load([]byte(commented))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, old := range []string{"", "   \n", "not: [valid", "- a list\n- not a mapping\n"} {
		out, err := MarshalKeeping([]byte(old), cfg)
		if err != nil {
			t.Fatalf("old %q: %v", old, err)
		}
		if string(out) != string(plain) {
			t.Errorf("old %q: got\n%s\nwant Marshal's\n%s", old, out, plain)
		}
	}
	// A file without comments gets camgate's header.
	out, err := MarshalKeeping([]byte("version: 1\nrules: []\n"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), marshalHeader) {
		t.Errorf("no header on an uncommented file:\n%s", out)
	}
}
