package admin

import "testing"

// TestAddDeviceValidation checks that a bad Add device form is refused
// per field before anything is sent to a device.
func TestAddDeviceValidation(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.owner()
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"no address", map[string]any{"password": "x"}, "address"},
		{"bad address", map[string]any{"address": "dvr.local", "password": "x"}, "address"},
		{"no password", map[string]any{"address": "192.0.2.1"}, "password"},
		{"bad channel", map[string]any{"address": "192.0.2.1", "password": "x", "channels": []int{101, 105}}, "channels"},
		{"bad port", map[string]any{"address": "192.0.2.1", "password": "x", "port": 70000}, "port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.must(422, "POST", "/api/v1/devices", tc.body)
			if _, ok := r.problems()[tc.field]; !ok {
				t.Fatalf("got %s, want a problem on %s", r.raw, tc.field)
			}
		})
	}
	if len(e.site.Config().Devices) != 0 {
		t.Fatal("a refused form added a device")
	}
}
