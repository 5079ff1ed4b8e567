package admin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/forward"
	"github.com/camgate/camgate/internal/site"
)

// ruleView is a rule as the API shows it: the config fields, enabled
// spelled out, what protects it with the defaults applied, and the ETag
// to send back in If-Match.
type ruleView struct {
	config.Rule
	Enabled   bool      `json:"enabled"`
	Effective effective `json:"effective"`
	ETag      string    `json:"etag"`
}

func (s *Server) viewOf(r *config.Rule) ruleView {
	return ruleView{Rule: r.Clone(), Enabled: r.IsEnabled(), Effective: effectiveOf(r, s.guard() != nil), ETag: ruleETag(r)}
}

// ruleETag is a strong validator for one rule: a hash of its JSON form.
func ruleETag(r *config.Rule) string {
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}

// tableETag is the validator for the whole table, used when adding rules.
func tableETag(rules []config.Rule) string {
	h := sha256.New()
	for i := range rules {
		b, _ := json.Marshal(&rules[i])
		h.Write(b)
		h.Write([]byte{'\n'})
	}
	return `"t` + hex.EncodeToString(h.Sum(nil)[:8]) + `"`
}

// ifMatch reports whether the If-Match header, if any, accepts etag
// (RFC 9110 §13.1.1: strong comparison; "*" matches any current
// representation).
func ifMatch(r *http.Request, etag string, exists bool) bool {
	h := r.Header.Get("If-Match")
	if h == "" {
		return true
	}
	for _, v := range strings.Split(h, ",") {
		v = strings.TrimSpace(v)
		if (v == "*" && exists) || (v == etag && exists) {
			return true
		}
	}
	return false
}

func problem(field, format string, args ...any) []config.Problem {
	return []config.Problem{{Field: field, Message: fmt.Sprintf(format, args...)}}
}

// jsonFields are the JSON names of a struct's fields, so that a body
// field spelled differently ("Name", "externalPort") is reported instead
// of being matched case-insensitively by encoding/json.
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}

// ruleFields are the JSON names of config.Rule's fields.
func ruleFields() map[string]bool { return jsonFields(reflect.TypeFor[config.Rule]()) }

// nestedFields are the rule's sections whose objects are decoded key by
// key as well, so that a problem names "guard.max_failures", not just
// "guard", and the UI can show it under its own control. shortForms is
// what else the section accepts, for the message when it is neither.
var nestedFields = map[string]struct {
	typ        reflect.Type
	shortForms string
}{
	"guard": {reflect.TypeFor[config.Guard](), "an object (see docs/SECURITY.md), one of auth, hikvision, off, or a list of those"},
	"tls":   {reflect.TypeFor[config.TLS](), "an object (see docs/SECURITY.md), or terminate or off"},
}

// decodeNested checks the keys of a guard or tls object one by one. It
// returns nil when raw is not an object (the section's short forms) or
// every key decodes.
func decodeNested(section string, raw json.RawMessage) []config.Problem {
	var sub map[string]json.RawMessage
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) && json.Unmarshal(raw, &sub) != nil {
		return nil // the whole-section decode reports the syntax
	}
	known := jsonFields(nestedFields[section].typ)
	keys := make([]string, 0, len(sub))
	for k := range sub {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var probs []config.Problem
	for _, k := range keys {
		field := section + "." + k
		if !known[k] {
			probs = append(probs, config.Problem{Field: field, Message: fmt.Sprintf("unknown field %q in %s (see /api/v1/openapi.json)", k, section)})
			continue
		}
		one, _ := json.Marshal(map[string]map[string]json.RawMessage{section: {k: sub[k]}})
		var scratch config.Rule
		if err := json.Unmarshal(one, &scratch); err != nil {
			msg := strings.TrimPrefix(jsonMessage(err), field+" ")
			probs = append(probs, config.Problem{Field: field, Message: msg})
		}
	}
	return probs
}

// readOnlyFields appear in the API's rule views and are ignored when a
// view is sent back.
var readOnlyFields = []string{"etag", "effective"}

// decodeRule decodes one rule from a JSON object, field by field, so that
// every bad field is reported at once against its name, then checks the
// rule on its own with the config file's validator. The conflict checks
// that need the whole table run later, in site.UpdateIf.
func decodeRule(data []byte) (config.Rule, []config.Problem) {
	var r config.Rule
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&fields); err != nil {
		return r, []config.Problem{{Message: "malformed JSON: " + jsonMessage(err)}}
	}
	if dec.More() {
		return r, []config.Problem{{Message: "malformed JSON: more than one value"}}
	}
	if fields == nil {
		return r, []config.Problem{{Message: "the body must be a JSON object describing a rule"}}
	}
	known := ruleFields()
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var probs []config.Problem
	bad := map[string]bool{}
	for _, k := range keys {
		if slices.Contains(readOnlyFields, k) {
			continue
		}
		if !known[k] {
			probs = append(probs, config.Problem{Field: k, Message: fmt.Sprintf("unknown field %q (see /api/v1/openapi.json for the rule's fields)", k)})
			bad[k] = true
			continue
		}
		if _, nested := nestedFields[k]; nested {
			if ps := decodeNested(k, fields[k]); len(ps) > 0 {
				probs = append(probs, ps...)
				bad[k] = true
				continue
			}
		}
		one, _ := json.Marshal(map[string]json.RawMessage{k: fields[k]})
		d := json.NewDecoder(bytes.NewReader(one))
		d.DisallowUnknownFields()
		if err := d.Decode(&r); err != nil {
			msg := jsonMessage(err)
			msg = strings.TrimPrefix(msg, k+" ")
			var te *json.UnmarshalTypeError
			if n, nested := nestedFields[k]; nested && errors.As(err, &te) && te.Field == k {
				msg = "must be " + n.shortForms
			}
			probs = append(probs, config.Problem{Field: k, Message: msg})
			bad[k] = true
		}
	}
	label := r.Name
	for i := range probs {
		probs[i].Rule = label
	}
	for _, p := range config.ProblemsOf(config.ValidateRule(&r)) {
		top, _, _ := strings.Cut(p.Field, ".")
		if !bad[top] {
			p.Line = 0
			probs = append(probs, p)
		}
	}
	return r, probs
}

func invalid(probs []config.Problem) apiError {
	msg := "the rule has problems"
	if len(probs) == 1 {
		msg = probs[0].Error()
	}
	return apiError{Status: http.StatusUnprocessableEntity, Message: msg, Problems: probs}
}

// updateError turns a site.UpdateIf failure into a response: a stale
// If-Match is 412, validation problems 422 with one entry per field, a
// failure to apply (a port in use) and a file changed on disk 409, a
// failure to save 500.
func updateError(err error) error {
	var ae apiError
	var p config.Problem
	var pe *fs.PathError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, site.ErrConflict):
		return apiError{Status: http.StatusPreconditionFailed, Message: "the rule was changed by someone else since you loaded it; reload and try again", Err: err}
	case errors.As(err, &p):
		probs := config.ProblemsOf(err)
		for i := range probs {
			probs[i].Line = 0
		}
		return invalid(probs)
	case errors.Is(err, site.ErrChangedOnDisk):
		// A hand edit not yet reloaded: writing the file would lose it.
		return apiError{Status: http.StatusConflict, Message: err.Error(), Err: err}
	case strings.HasPrefix(err.Error(), "save "), errors.As(err, &pe):
		// site says whether the change was never applied, undone, or
		// left running because undoing it failed.
		return apiError{Status: http.StatusInternalServerError, Message: "the config file could not be written: " + err.Error(), Err: err}
	}
	ae = apiError{Status: http.StatusConflict, Message: "not applied, nothing changed: " + err.Error(), Err: err}
	var priv *forward.PrivilegedPortError
	switch {
	case errors.As(err, &priv):
		// The error's own text gives command-line fixes; the UI gives
		// the ones its owner can make from the browser.
		ae.Message = "not applied, nothing changed: " + priv.WebFix()
		ae.Problems = problem("external_port", "%s", priv.WebFix())
	case errors.Is(err, syscall.EADDRINUSE):
		ae.Problems = problem("external_port", "the port is already in use on this host by another program")
	case errors.Is(err, syscall.EACCES):
		ae.Problems = problem("external_port", "ports below 1024 need camgate to run as root or with CAP_NET_BIND_SERVICE")
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		ae.Problems = problem("listen_address", "this host has no such address")
	}
	return ae
}

func changeDetail(ch config.Change) string {
	var parts []string
	for _, x := range []struct {
		verb  string
		names []string
	}{{"started", ch.Added}, {"stopped", ch.Removed}, {"restarted", ch.Changed}} {
		if len(x.names) > 0 {
			parts = append(parts, x.verb+" "+strings.Join(x.names, ","))
		}
	}
	if len(parts) == 0 {
		return "no listener touched"
	}
	return strings.Join(parts, "; ")
}

func (s *Server) listRules(w http.ResponseWriter, r *http.Request) error {
	cfg := s.site.Config()
	views := make([]ruleView, 0, len(cfg.Rules))
	for i := range cfg.Rules {
		views = append(views, s.viewOf(&cfg.Rules[i]))
	}
	etag := tableETag(cfg.Rules)
	w.Header().Set("ETag", etag)
	writeJSON(w, http.StatusOK, map[string]any{"rules": views, "etag": etag})
	return nil
}

func (s *Server) getRule(w http.ResponseWriter, r *http.Request) error {
	cfg := s.site.Config()
	rule := cfg.Rule(r.PathValue("name"))
	if rule == nil {
		return errorf(http.StatusNotFound, "no rule called %q", r.PathValue("name"))
	}
	v := s.viewOf(rule)
	w.Header().Set("ETag", v.ETag)
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) createRule(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	rule, probs := decodeRule(body)
	if len(probs) > 0 {
		s.record(r, "rule.create", rule.Name, false, "invalid")
		return invalid(probs)
	}
	return s.addRules(w, r, "rule.create", []config.Rule{rule})
}

// addRules appends rules to the table in one change: all or none.
func (s *Server) addRules(w http.ResponseWriter, r *http.Request, action string, rules []config.Rule, devices ...config.Device) error {
	names := make([]string, len(rules))
	for i := range rules {
		names[i] = rules[i].Name
	}
	ch, err := s.site.UpdateIf(r.Context(), func(cur *config.Config) error {
		if !ifMatch(r, tableETag(cur.Rules), true) {
			return site.ErrConflict
		}
		return nil
	}, func(cfg *config.Config) error {
		var probs []config.Problem
		for i := range rules {
			if cfg.Rule(rules[i].Name) != nil {
				probs = append(probs, config.Problem{Rule: rules[i].Name, Field: "name",
					Message: fmt.Sprintf("a rule called %q exists already; pick another name", rules[i].Name)})
			}
		}
		if len(probs) > 0 {
			return invalid(probs)
		}
		for _, d := range devices {
			if cur := cfg.Device(d.Name); cur != nil {
				*cur = d
			} else {
				cfg.Devices = append(cfg.Devices, d)
			}
		}
		cfg.Rules = append(cfg.Rules, rules...)
		return nil
	})
	target := strings.Join(names, ",")
	if err != nil {
		s.record(r, action, target, false, err.Error())
		return updateError(err)
	}
	s.record(r, action, target, true, changeDetail(ch))
	cfg := s.site.Config()
	if len(rules) == 1 {
		rule := cfg.Rule(rules[0].Name)
		v := s.viewOf(rule)
		w.Header().Set("Location", "/api/v1/rules/"+rule.Name)
		w.Header().Set("ETag", v.ETag)
		writeJSON(w, http.StatusCreated, v)
		return nil
	}
	views := make([]ruleView, 0, len(rules))
	for _, n := range names {
		views = append(views, s.viewOf(cfg.Rule(n)))
	}
	writeJSON(w, http.StatusCreated, map[string]any{"rules": views, "etag": tableETag(cfg.Rules)})
	return nil
}

// createRules adds several rules at once (the Hikvision preset): if one
// is invalid or cannot be applied, none is added.
func (s *Server) createRules(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var batch struct {
		Rules []json.RawMessage `json:"rules"`
		// Devices are upserted in the same transaction, by name, so
		// that `camgate device add` can add a device and the rules that
		// name it at once.
		Devices []config.Device `json:"devices"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&batch); err != nil {
		return errorf(http.StatusBadRequest, "malformed JSON body: %s; send {\"rules\": [...]}", jsonMessage(err))
	}
	if len(batch.Rules) == 0 || len(batch.Rules) > 64 {
		return errorf(http.StatusBadRequest, "send 1 to 64 rules in \"rules\"")
	}
	var rules []config.Rule
	var probs []config.Problem
	for i, raw := range batch.Rules {
		rule, ps := decodeRule(raw)
		for _, p := range ps {
			if p.Rule == "" {
				p.Rule = fmt.Sprintf("rules[%d]", i)
			}
			probs = append(probs, p)
		}
		rules = append(rules, rule)
	}
	if len(probs) > 0 {
		s.record(r, "rule.create", "batch", false, "invalid")
		return invalid(probs)
	}
	if len(batch.Devices) > 64 {
		return errorf(http.StatusBadRequest, "send at most 64 devices in \"devices\"")
	}
	return s.addRules(w, r, "rule.create", rules, batch.Devices...)
}

// editRule runs edit on the named rule inside one site.UpdateIf, with the
// rule's ETag checked against If-Match, and writes the result.
// newName is the rule's name afterwards ("" means unchanged).
func (s *Server) editRule(w http.ResponseWriter, r *http.Request, action, newName string, edit func(cfg *config.Config, i int) error) error {
	name := r.PathValue("name")
	if newName == "" {
		newName = name
	}
	ch, err := s.site.UpdateIf(r.Context(), func(cur *config.Config) error {
		rule := cur.Rule(name)
		if rule == nil {
			return errorf(http.StatusNotFound, "no rule called %q", name)
		}
		if !ifMatch(r, ruleETag(rule), true) {
			return site.ErrConflict
		}
		return nil
	}, func(cfg *config.Config) error {
		for i := range cfg.Rules {
			if cfg.Rules[i].Name == name {
				return edit(cfg, i)
			}
		}
		return errorf(http.StatusNotFound, "no rule called %q", name)
	})
	if err != nil {
		s.record(r, action, name, false, err.Error())
		return updateError(err)
	}
	detail := changeDetail(ch)
	if newName != name {
		detail = "renamed to " + newName + "; " + detail
	}
	s.record(r, action, name, true, detail)
	if action == "rule.delete" {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	rule := s.site.Config().Rule(newName)
	if rule == nil {
		return errorf(http.StatusNotFound, "no rule called %q", newName)
	}
	v := s.viewOf(rule)
	w.Header().Set("ETag", v.ETag)
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) updateRule(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	rule, probs := decodeRule(body)
	if rule.Name == "" {
		// The path names the rule; a body without a name keeps it.
		rule.Name = r.PathValue("name")
		var rest []config.Problem
		for _, p := range probs {
			if p.Field != "name" {
				p.Rule = rule.Name
				rest = append(rest, p)
			}
		}
		probs = rest
	}
	if len(probs) > 0 {
		s.record(r, "rule.update", r.PathValue("name"), false, "invalid")
		return invalid(probs)
	}
	return s.editRule(w, r, "rule.update", rule.Name, func(cfg *config.Config, i int) error {
		if rule.Name != cfg.Rules[i].Name && cfg.Rule(rule.Name) != nil {
			return invalid([]config.Problem{{Rule: rule.Name, Field: "name", Message: fmt.Sprintf("a rule called %q exists already; pick another name", rule.Name)}})
		}
		cfg.Rules[i] = rule
		return nil
	})
}

func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request) error {
	return s.editRule(w, r, "rule.delete", "", func(cfg *config.Config, i int) error {
		cfg.Rules = append(cfg.Rules[:i], cfg.Rules[i+1:]...)
		return nil
	})
}

func (s *Server) enableRule(on bool) handler {
	action := "rule.disable"
	if on {
		action = "rule.enable"
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		return s.editRule(w, r, action, "", func(cfg *config.Config, i int) error {
			cfg.Rules[i].SetEnabled(on)
			return nil
		})
	}
}
