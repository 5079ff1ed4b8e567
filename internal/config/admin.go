package config

// Admin configures the web UI and REST API served by `camgate serve`.
type Admin struct{}

func (a Admin) clone() Admin { return a }

// validateAdmin checks the admin section.
func validateAdmin(a *Admin, add func(field, format string, args ...any)) {}
