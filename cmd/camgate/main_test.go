package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestHelpTells checks what the commands say about themselves (issue
// #13, item 15): usage on stderr when no command is given, every flag of
// a command in its usage line (or a "[flags]" placeholder) and in its
// "Flags:" list, and summaries that match the defaults.
func TestHelpTells(t *testing.T) {
	code, out, errs := runCLI(t, nil)
	if code != 2 || out != "" || !strings.Contains(errs, "Usage: camgate <command>") {
		t.Fatalf("no arguments: got exit %d, stdout %q, stderr %q; want 2 with the usage on stderr only", code, out, errs)
	}
	code, out, _ = runCLI(t, nil, "--help")
	if code != 0 || !strings.Contains(out, "Usage: camgate <command>") {
		t.Fatalf("--help: got exit %d, stdout %q; want 0 with the usage", code, out)
	}
	if strings.Contains(out, "when configured") || !regexp.MustCompile(`serve .*admin UI.*on by default`).MatchString(out) {
		t.Errorf("the serve summary must say the admin UI is on by default:\n%s", out)
	}

	flagName := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	for _, args := range [][]string{
		{"serve"}, {"validate"}, {"demo"}, {"sim"}, {"discover"}, {"device", "add"}, {"rule", "list"},
		{"rule", "add"}, {"rule", "rm"}, {"check"}, {"audit"}, {"router", "status"}, {"version"},
	} {
		name := strings.Join(args, " ")
		t.Run(name, func(t *testing.T) {
			code, out, errs := runCLI(t, nil, append(args, "--help")...)
			if code != 0 {
				t.Fatalf("got exit %d\n%s%s", code, out, errs)
			}
			first, _, _ := strings.Cut(out, "\n")
			if !strings.HasPrefix(first, "Usage: camgate "+name) {
				t.Fatalf("first line %q, want Usage: camgate %s", first, name)
			}
			for _, m := range flagName.FindAllStringSubmatch(out, -1) {
				if !strings.Contains(first, "--"+m[1]) && !strings.Contains(first, "[flags]") {
					t.Errorf("flag --%s is not in the usage line %q", m[1], first)
				}
			}
		})
	}

	code, out, _ = runCLI(t, nil, "device", "--help")
	if first, _, _ := strings.Cut(out, "\n"); code != 0 || first != "Usage: camgate device <command> [flags]" {
		t.Errorf("device --help: got exit %d, first line %q; want the device command's own usage", code, first)
	}
	code, out, _ = runCLI(t, nil, "rule", "--help")
	for _, want := range []string{"Usage: camgate rule <action>", "-config", "-token-file", "-file", "-timeout", "-json", "-external-port", "-internal-ip"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("rule --help: exit %d, lacks %q:\n%s", code, want, out)
		}
	}
}
