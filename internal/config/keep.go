package config

import (
	"bytes"

	"go.yaml.in/yaml/v3"
)

// MarshalKeeping encodes cfg like Marshal, but keeps what the owner wrote
// in the file it replaces (old): the comments above, beside and below
// every key, rule and list item that is still there, and flow style
// ("allow: [a, b]"). Rules are matched by name, list entries by value,
// keys by key. What was removed takes its comments with it.
// When old is empty or not a YAML mapping, the result is Marshal's.
//
// Blank lines and key order are not kept: the file comes out in camgate's
// own order, which is the order docs/CONFIG.md lists the keys in.
func MarshalKeeping(old []byte, cfg *Config) ([]byte, error) {
	var prev yaml.Node
	if len(bytes.TrimSpace(old)) == 0 || yaml.Unmarshal(old, &prev) != nil ||
		prev.Kind != yaml.DocumentNode || len(prev.Content) != 1 || prev.Content[0].Kind != yaml.MappingNode {
		return Marshal(cfg)
	}
	var next yaml.Node
	if err := next.Encode(cfg); err != nil {
		return nil, err
	}
	keepComments(prev.Content[0], &next)
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{&next},
		HeadComment: prev.HeadComment, FootComment: prev.FootComment}
	var buf bytes.Buffer
	if !hasHeadComment(&prev) {
		buf.WriteString(marshalHeader)
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// hasHeadComment reports whether the document opens with a comment, on
// the document itself or on its first key (where yaml.v3 puts a comment
// that is followed by the first key without a blank line).
func hasHeadComment(doc *yaml.Node) bool {
	if doc.HeadComment != "" {
		return true
	}
	m := doc.Content[0]
	return m.HeadComment != "" || (len(m.Content) > 0 && m.Content[0].HeadComment != "")
}

// keepComments copies comments and collection style from prev onto next,
// for every node of next that has a counterpart in prev.
func keepComments(prev, next *yaml.Node) {
	copyComments(prev, next)
	if prev.Kind != next.Kind {
		return
	}
	switch next.Kind {
	case yaml.MappingNode:
		next.Style = prev.Style & yaml.FlowStyle
		for i := 0; i+1 < len(next.Content); i += 2 {
			k, v := next.Content[i], next.Content[i+1]
			if pk, pv := mappingEntry(prev, k.Value); pk != nil {
				copyComments(pk, k)
				keepComments(pv, v)
			}
		}
	case yaml.SequenceNode:
		next.Style = prev.Style & yaml.FlowStyle
		byKey := map[string]*yaml.Node{}
		for _, item := range prev.Content {
			if k := itemKey(item); k != "" {
				byKey[k] = item
			}
		}
		for i, item := range next.Content {
			if k := itemKey(item); k != "" {
				if p := byKey[k]; p != nil {
					keepComments(p, item)
				}
			} else if i < len(prev.Content) {
				keepComments(prev.Content[i], item)
			}
		}
	}
}

// copyComments copies the comments of prev onto next.
func copyComments(prev, next *yaml.Node) {
	next.HeadComment, next.LineComment, next.FootComment = prev.HeadComment, prev.LineComment, prev.FootComment
}

// mappingEntry returns the key and value nodes of key in mapping m.
func mappingEntry(m *yaml.Node, key string) (k, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// itemKey is what a list item is followed by across a rewrite: a rule's
// (or any mapping's) "name", a scalar's value ("203.0.113.0/24" in an
// allow list), or "" to go by position.
func itemKey(item *yaml.Node) string {
	switch item.Kind {
	case yaml.ScalarNode:
		return "=" + item.Value
	case yaml.MappingNode:
		if _, v := mappingEntry(item, "name"); v != nil && v.Kind == yaml.ScalarNode {
			return "name=" + v.Value
		}
	}
	return ""
}
