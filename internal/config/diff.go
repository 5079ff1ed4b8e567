package config

// Change is the difference between two rule tables, by rule name. Only
// enabled rules count as present: disabling a rule removes it from the
// running gateway, and enabling one adds it.
type Change struct {
	// Added rules are new, or were disabled and are now enabled.
	Added []string
	// Removed rules are gone, or are now disabled.
	Removed []string
	// Changed rules forward differently and must be replaced.
	Changed []string
	// Kept rules forward the same way; their listeners and live
	// connections stay. Their description may differ.
	Kept []string
}

// Empty reports whether applying the change would touch any listener.
func (c Change) Empty() bool {
	return len(c.Added) == 0 && len(c.Removed) == 0 && len(c.Changed) == 0
}

// Diff compares the enabled rules of old and new.
func Diff(old, new []Rule) Change {
	was := map[string]*Rule{}
	for i := range old {
		if old[i].IsEnabled() {
			was[old[i].Name] = &old[i]
		}
	}
	var ch Change
	now := map[string]bool{}
	for i := range new {
		r := &new[i]
		if !r.IsEnabled() {
			continue
		}
		now[r.Name] = true
		o, ok := was[r.Name]
		switch {
		case !ok:
			ch.Added = append(ch.Added, r.Name)
		case o.SameForwarding(r):
			ch.Kept = append(ch.Kept, r.Name)
		default:
			ch.Changed = append(ch.Changed, r.Name)
		}
	}
	for i := range old {
		if old[i].IsEnabled() && !now[old[i].Name] {
			ch.Removed = append(ch.Removed, old[i].Name)
		}
	}
	return ch
}
