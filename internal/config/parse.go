package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a config: which rule, which field, where
// in the file, and what. Validate and Parse return several of them joined
// with errors.Join; ProblemsOf takes them apart again.
type Problem struct {
	Rule    string `json:"rule,omitempty"`
	Field   string `json:"field,omitempty"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

func (p Problem) Error() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", p.Rule)
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ProblemsOf returns the problems carried by err, in order. An error that
// is not a config problem comes back as a single Problem with its text.
func ProblemsOf(err error) []Problem {
	if err == nil {
		return nil
	}
	var out []Problem
	var walk func(error)
	walk = func(e error) {
		if p, ok := e.(Problem); ok {
			out = append(out, p)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		out = append(out, Problem{Message: e.Error()})
	}
	walk(err)
	return out
}

// Load parses and validates a config in one step, returning every problem
// found by either.
func Load(data []byte) (*Config, error) {
	cfg, perr := Parse(data)
	if cfg == nil {
		return nil, perr
	}
	verr := cfg.Validate()
	if perr == nil && verr == nil {
		return cfg, nil
	}
	// A field that failed to decode is also empty, so Validate may
	// complain about it again; keep only the decoder's, more precise, word.
	seen := map[[2]string]bool{}
	parsed := ProblemsOf(perr)
	for _, p := range parsed {
		seen[[2]string{p.Rule, p.Field}] = true
	}
	all := make([]error, 0, len(parsed))
	for _, p := range parsed {
		all = append(all, p)
	}
	for _, p := range ProblemsOf(verr) {
		if !seen[[2]string{p.Rule, p.Field}] {
			all = append(all, p)
		}
	}
	sortProblems(all)
	return cfg, errors.Join(all...)
}

func sortProblems(ps []error) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i].(Problem), ps[j].(Problem)
		if a.Line == 0 || b.Line == 0 {
			return false
		}
		return a.Line < b.Line
	})
}

// Parse decodes YAML strictly: unknown keys and malformed values are
// reported with their line numbers, all at once. It does not validate
// semantics; see Validate and Load. The returned config is non-nil when the
// document was well-formed YAML, even if some fields were rejected.
func Parse(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, syntaxProblem(data, err)
	}
	if len(bytes.TrimSpace(data)) == 0 || root.Kind == 0 {
		return nil, Problem{Message: "the file is empty; it needs at least \"version: 1\" and a rules list"}
	}
	idx := indexNodes(&root)

	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(&cfg)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	for i := range cfg.Rules {
		if i < len(idx.rules) {
			cfg.Rules[i].line = idx.rules[i].line
			cfg.Rules[i].fieldLines = idx.rules[i].fields
		}
	}
	if err == nil {
		return &cfg, nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return nil, Problem{Line: yamlLine(err.Error()), Message: cleanYAML(err.Error())}
	}
	var probs []error
	for _, msg := range te.Errors {
		probs = append(probs, idx.problemAt(&cfg, msg))
	}
	return &cfg, errors.Join(probs...)
}

var (
	lineRE    = regexp.MustCompile(`line (\d+)`)
	colRE     = regexp.MustCompile(`^line \d+: col (\d+): `)
	unknownRE = regexp.MustCompile(`field (\S+) not found in type`)
	typeRE    = regexp.MustCompile("cannot unmarshal !!(\\w+) `([^`]*)` into (\\S+)")
)

func yamlLine(msg string) int {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// cleanYAML turns the YAML library's wording, which names Go types, into
// words about the file.
func cleanYAML(msg string) string {
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = colRE.ReplaceAllString(msg, "")
	msg = lineRE.ReplaceAllString(msg, "")
	msg = strings.TrimLeft(msg, ": ")
	if m := unknownRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("unknown key %q (check the spelling; see docs/CONFIG.md for the keys)", m[1])
	}
	if m := typeRE.FindStringSubmatch(msg); m != nil {
		want := m[3]
		switch {
		case strings.Contains(want, "int"):
			want = "a number"
		case strings.Contains(want, "bool"):
			want = "true or false"
		case strings.HasPrefix(want, "[]"):
			want = "a list"
		case strings.Contains(want, "string"):
			want = "text"
		default:
			want = "a " + strings.TrimPrefix(strings.TrimPrefix(want, "config."), "*")
		}
		return fmt.Sprintf("%q must be %s", m[2], want)
	}
	return msg
}

type ruleNode struct {
	line   int
	name   string
	fields map[string]int
}

type nodeIndex struct {
	rules []ruleNode
	// keys maps a line to the rule index (-1 for top level) and the last
	// key on it; values maps a value's line and column to its key, which
	// tells keys apart in one-line {flow: mappings}.
	keys   map[int]keyPos
	values map[[2]int]keyPos
}

type keyPos struct {
	rule int
	key  string
}

func indexNodes(root *yaml.Node) nodeIndex {
	idx := nodeIndex{keys: map[int]keyPos{}, values: map[[2]int]keyPos{}}
	doc := root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return idx
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		idx.keys[k.Line] = keyPos{rule: -1, key: k.Value}
		indexSection(&idx, k.Value, v)
		if k.Value != "rules" || v.Kind != yaml.SequenceNode {
			continue
		}
		for ri, rn := range v.Content {
			r := ruleNode{line: rn.Line, fields: map[string]int{}}
			if rn.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(rn.Content); j += 2 {
					key, val := rn.Content[j], rn.Content[j+1]
					r.fields[key.Value] = key.Line
					idx.keys[key.Line] = keyPos{rule: ri, key: key.Value}
					idx.values[[2]int{val.Line, val.Column}] = keyPos{rule: ri, key: key.Value}
					if val.Line != key.Line {
						indexSubkeys(&idx, ri, key.Value, val)
					}
					if key.Value == "name" {
						r.name = val.Value
					}
				}
			}
			idx.rules = append(idx.rules, r)
		}
	}
	return idx
}

// indexSection records the keys of a top-level section such as admin:.
func indexSection(idx *nodeIndex, section string, v *yaml.Node) {
	if v.Kind != yaml.MappingNode {
		return
	}
	for j := 0; j+1 < len(v.Content); j += 2 {
		idx.keys[v.Content[j].Line] = keyPos{rule: -1, key: section + "." + v.Content[j].Value}
	}
}

// indexSubkeys records nested keys of a rule, such as guard.auth.
func indexSubkeys(idx *nodeIndex, rule int, prefix string, v *yaml.Node) {
	if v.Kind != yaml.MappingNode {
		return
	}
	for j := 0; j+1 < len(v.Content); j += 2 {
		idx.keys[v.Content[j].Line] = keyPos{rule: rule, key: prefix + "." + v.Content[j].Value}
	}
}

func (idx nodeIndex) problemAt(cfg *Config, msg string) Problem {
	line := yamlLine(msg)
	p := Problem{Line: line, Message: cleanYAML(msg)}
	kp, ok := idx.keys[line]
	if m := colRE.FindStringSubmatch(msg); m != nil {
		col, _ := strconv.Atoi(m[1])
		if vp, found := idx.values[[2]int{line, col}]; found {
			kp, ok = vp, true
		}
	}
	if !ok {
		return p
	}
	p.Field = kp.key
	if m := unknownRE.FindStringSubmatch(msg); m != nil {
		p.Field = ""
		if kp.rule < 0 && strings.Contains(kp.key, ".") {
			p.Field, _, _ = strings.Cut(kp.key, ".")
		}
	}
	if kp.rule >= 0 {
		p.Rule = ruleLabel(cfg, kp.rule, idx)
		if m := unknownRE.FindStringSubmatch(msg); m != nil && strings.Contains(kp.key, ".") {
			p.Field, _, _ = strings.Cut(kp.key, ".")
		}
	}
	return p
}

func ruleLabel(cfg *Config, i int, idx nodeIndex) string {
	if i < len(cfg.Rules) && cfg.Rules[i].Name != "" {
		return cfg.Rules[i].Name
	}
	if i < len(idx.rules) && idx.rules[i].name != "" {
		return idx.rules[i].name
	}
	return fmt.Sprintf("rules[%d]", i)
}

// marshalHeader opens a file camgate writes, saying it is managed by
// camgate as well as by hand.
const marshalHeader = "# camgate configuration. camgate rewrites this file when rules are changed\n" +
	"# from the web UI, the API or `camgate rule` / `camgate device add`;\n" +
	"# comments are kept. Reference: docs/CONFIG.md\n"

// Marshal encodes a config as YAML, with marshalHeader. MarshalKeeping
// does the same while keeping the comments of the file it replaces.
func Marshal(cfg *Config) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(marshalHeader)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
