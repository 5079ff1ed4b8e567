package config

// Router configures upstream router automation: UPnP IGD, NAT-PMP or PCP
// mappings for rules with `router: true`.
type Router struct{}

// validateRouter checks the router section.
func validateRouter(r *Router, add func(field, format string, args ...any)) {}
