package admin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/camgate/camgate/internal/config"
)

// FuzzDecodeRule feeds arbitrary bytes to the rule body decoder. It must
// never panic; a body it accepts must be a rule the config validator
// accepts, and must survive a round trip through the API's JSON form
// unchanged (the ETag a client gets back must describe what it sent).
func FuzzDecodeRule(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "rules", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		// The batch file's rules, one by one.
		var batch struct{ Rules []json.RawMessage }
		if json.Unmarshal(b, &batch) == nil {
			for _, r := range batch.Rules {
				f.Add([]byte(r))
			}
		}
	}
	f.Add([]byte(`{"name":"a","external_port":1,"internal_ip":"::1"}`))
	f.Add([]byte(`{"name":"a","external_port":"1-1024","internal_ip":"10.0.0.1","internal_port":"2-1025"}`))
	f.Add([]byte(`{"name":"a","external_port":1e3,"internal_ip":"10.0.0.1"}`))
	f.Add([]byte(`{"name":"a","external_port":null,"internal_ip":null,"enabled":null}`))
	f.Add([]byte(`{"name":"a","name":"b","external_port":1,"internal_ip":"h"}`))
	f.Add([]byte(`{"guard":{"x":1},"tls":[],"dial_timeout":-5}`))
	f.Add([]byte("\xff\xfe{}"))
	f.Add([]byte(`null`))

	f.Fuzz(func(t *testing.T, data []byte) {
		r, probs := decodeRule(data)
		if len(probs) > 0 {
			for _, p := range probs {
				if p.Message == "" {
					t.Fatalf("problem without a message: %+v", p)
				}
			}
			return
		}
		if err := config.ValidateRule(&r); err != nil {
			t.Fatalf("accepted a rule the validator refuses: %v", err)
		}
		b, err := json.Marshal(&r)
		if err != nil {
			t.Fatalf("marshal accepted rule: %v", err)
		}
		back, probs := decodeRule(b)
		if len(probs) > 0 {
			t.Fatalf("round trip of %s: %v", b, probs)
		}
		if ruleETag(&back) != ruleETag(&r) {
			b2, _ := json.Marshal(&back)
			t.Fatalf("round trip changed the rule:\n%s\n%s", b, b2)
		}
	})
}
