package config

import (
	"bytes"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxSyntaxScan bounds the re-parsing syntaxProblem does: each step parses
// a prefix of the file, and camgate.yaml files are a few hundred lines.
const maxSyntaxScan = 2000

// syntaxProblem turns a YAML syntax error into a Problem on the line that
// is actually wrong.
//
// The YAML library reports where the enclosing block started (libyaml's
// "context mark"), not where it broke (the "problem mark"): a key indented
// one space too few inside a rule is reported on the "rules:" line or the
// rule's "- name:" line, two or more lines above it. The library does not
// expose the problem mark, so find it by parsing ever longer prefixes of
// the file from the reported line on: the first prefix that fails the same
// way ends on the broken line. A prefix that fails differently (one cut
// inside a multi-line [flow, list]) is skipped; when no prefix matches, the
// library's line is kept.
func syntaxProblem(data []byte, err error) Problem {
	msg := err.Error()
	line, want := yamlLine(msg), cleanYAML(msg)
	if line > 0 {
		lines := bytes.SplitAfter(data, []byte("\n"))
		for n := line; n <= len(lines) && n-line < maxSyntaxScan; n++ {
			var node yaml.Node
			perr := yaml.Unmarshal(bytes.Join(lines[:n], nil), &node)
			if perr != nil && cleanYAML(perr.Error()) == want {
				line = n
				break
			}
		}
	}
	return Problem{Line: line, Message: explainSyntax(want)}
}

// explainSyntax adds what to do to the YAML library's terse messages.
func explainSyntax(msg string) string {
	switch {
	case strings.Contains(msg, "did not find expected '-' indicator"),
		strings.Contains(msg, "did not find expected key"):
		return msg + ": this line is indented differently from the lines above it; a rule's keys line up under its first key, and each rule starts with \"- \""
	case strings.Contains(msg, "mapping values are not allowed in this context"):
		return msg + ": this line is indented deeper than the key above it, or a value holds an unquoted \": \" (put such a value in quotes)"
	case strings.Contains(msg, "found a tab character"):
		return msg + ": indent with spaces, not tabs"
	case strings.Contains(msg, "found character that cannot start any token"):
		return msg + ": indent with spaces, not tabs, and quote a value that starts with @ or a backquote"
	case strings.Contains(msg, "did not find expected ',' or ']'"):
		return msg + ": a [list] is not closed; end it with ] on the same line or quote items that contain commas"
	}
	return msg
}
