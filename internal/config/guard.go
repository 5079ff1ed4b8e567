package config

// Guard holds a rule's protections beyond allow/deny: per-source limits,
// the brute-force guard and the Hikvision exploit filter. Its fields and
// their validation are owned by the guard feature (docs/SECURITY.md).
type Guard struct{}

func (g Guard) clone() Guard       { return g }
func (g Guard) equal(o Guard) bool { return g == o }

// TLS configures HTTPS termination for a rule ("tls: terminate").
type TLS struct{}

// validateGuard checks a rule's guard and tls sections.
func validateGuard(r *Rule, add func(field, format string, args ...any)) {}
