package config

import (
	"slices"
	"testing"
)

func TestDiff(t *testing.T) {
	rule := func(name string, port uint16, mod func(*Rule)) Rule {
		r := Rule{Name: name, ExternalPort: PortRange{port, port}, InternalIP: "10.0.0.1"}
		if mod != nil {
			mod(&r)
		}
		return r
	}
	off := func(r *Rule) { r.SetEnabled(false) }
	old := []Rule{rule("a", 1, nil), rule("b", 2, nil), rule("c", 3, nil), rule("d", 4, off), rule("e", 5, nil)}
	new := []Rule{
		rule("a", 1, func(r *Rule) { r.Description = "new words" }), // kept: description only
		rule("b", 2, func(r *Rule) { r.InternalIP = "10.0.0.2" }),   // changed
		rule("d", 4, nil), // enabled: added
		rule("e", 5, off), // disabled: removed
		rule("f", 6, nil), // added
	} // c removed
	got := Diff(old, new)
	check := func(what string, got, want []string) {
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", what, got, want)
		}
	}
	check("added", got.Added, []string{"d", "f"})
	check("removed", got.Removed, []string{"c", "e"})
	check("changed", got.Changed, []string{"b"})
	check("kept", got.Kept, []string{"a"})
	if Diff(old, old).Empty() != true {
		t.Error("diff of a table with itself is not empty")
	}
}
