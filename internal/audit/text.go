package audit

import (
	"fmt"
	"io"
	"strings"
)

// WriteText writes the findings worst first, each as a headline (severity,
// id, subject and what was found) followed by what it means and the fix,
// then one line per device saying what was read and how many logins it
// cost.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	var parts []string
	for _, s := range Severities() {
		if n := r.Counts[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	if len(r.Findings) == 0 {
		b.WriteString("No findings.\n")
	} else {
		fmt.Fprintf(&b, "%d findings: %s\n", len(r.Findings), strings.Join(parts, ", "))
	}
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "\n%-8s  %s  %s\n", strings.ToUpper(string(f.Severity)), f.ID, f.Subject)
		fmt.Fprintf(&b, "          %s %s\n", capital(f.Subject), f.Title)
		fmt.Fprintf(&b, "          Means: %s\n", f.Meaning)
		fmt.Fprintf(&b, "          Fix:   %s\n", f.Fix)
	}
	if len(r.Devices) > 0 {
		b.WriteString("\nDevices:\n")
		for _, d := range r.Devices {
			fw := d.Firmware.String()
			if fw == "" {
				fw = "firmware unknown"
			} else {
				fw = "firmware " + fw + " (" + d.Firmware.Source + ")"
			}
			model := d.Firmware.Model
			if model == "" {
				model = "model unknown"
			}
			https := "HTTPS not read"
			if d.HTTPSEnabled != nil {
				https = map[bool]string{true: "HTTPS on", false: "HTTPS off"}[*d.HTTPSEnabled]
			}
			fmt.Fprintf(&b, "  %s: %s, %s, %s; default password: %s; %d credentialed requests, %d failed login(s)\n",
				d.Address, model, fw, https, d.DefaultPassword, d.LoginAttempts, d.FailedLogins)
			for _, n := range d.Notes {
				fmt.Fprintf(&b, "    note: %s\n", n)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
