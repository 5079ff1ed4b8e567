package check

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// WriteText writes the report as a table: one line per layer and
// protocol of each rule (✓, ✗ or ? and the reason), with the fix on the
// line below when there is one, then a summary line.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	switch {
	case r.Public.IP.IsValid():
		fmt.Fprintf(&b, "Public address: %s (from %s), %s", r.Public.IP, sourceWords(r.Public.Source), r.Public.Class)
	default:
		b.WriteString("Public address: unknown")
	}
	if r.From != "" {
		fmt.Fprintf(&b, "; outside probe from %s", r.From)
	}
	b.WriteString("\n")
	if r.Public.Note != "" && r.Public.Class != ClassPublic {
		fmt.Fprintf(&b, "  %s\n", r.Public.Note)
	}
	all := r.Rules
	if r.VPN != nil {
		all = append(slices.Clone(all), *r.VPN)
	}
	if len(all) == 0 {
		b.WriteString("\nNo enabled rules to check.\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	nameW := len("RULE")
	for _, rr := range all {
		nameW = max(nameW, len(rr.Rule))
	}
	fmt.Fprintf(&b, "\n%-*s  %-7s  %-5s  %s\n", nameW, "RULE", "LAYER", "PROTO", "RESULT")
	indent := strings.Repeat(" ", nameW+2+7+2+5+2+2)
	for _, rr := range all {
		name := rr.Rule
		for _, res := range rr.Results {
			fmt.Fprintf(&b, "%-*s  %-7s  %-5s  %s %s\n", nameW, name, res.Layer, res.Protocol, res.Status.Symbol(), oneLine(res.Reason))
			name = ""
			if res.Fix != "" && res.Status != OK {
				fmt.Fprintf(&b, "%sfix: %s\n", indent, oneLine(res.Fix))
			}
		}
	}
	fmt.Fprintf(&b, "\n%d ✓  %d ✗  %d ?", r.OK, r.Failed, r.Unknown)
	switch {
	case r.Failed > 0:
		b.WriteString("  — something is broken: see the ✗ lines and their fixes\n")
	case r.Unknown > 0:
		b.WriteString("  — nothing is broken, but some layers could not be tested (?)\n")
	default:
		b.WriteString("  — every layer works\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func sourceWords(s string) string {
	switch s {
	case "flag":
		return "--public-ip"
	case "router":
		return "the router"
	case "config":
		return "public_ip in the config"
	default:
		return s
	}
}

// oneLine folds any line breaks a device put into its answer.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
