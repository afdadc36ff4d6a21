package api

import (
	"html"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// fieldTree is a parsed ?fields= value: key → sub-tree; "*" keeps every
// key at its level. A node may carry an :excerpt modifier.
type fieldTree map[string]*fieldNode

type fieldNode struct {
	children fieldTree
	excerpt  *excerpt
}

type excerpt struct {
	max      int
	ellipsis bool
}

var excerptRe = regexp.MustCompile(`^(.*):excerpt\(\s*(\d+)\s*(?:,\s*(\w+)\s*)?\)$`)

// parseFields parses "a,b.c,d:excerpt(10,true)"; commas inside parentheses
// do not split.
func parseFields(spec string) fieldTree {
	tree := fieldTree{}
	depth, start := 0, 0
	var parts []string
	for i := 0; i < len(spec); i++ {
		switch spec[i] {
		case '(':
			depth++
		case ')':
			if depth > 0 {
				depth--
			}
		case ',':
			if depth == 0 {
				parts = append(parts, spec[start:i])
				start = i + 1
			}
		}
	}
	parts = append(parts, spec[start:])
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		var ex *excerpt
		if m := excerptRe.FindStringSubmatch(p); m != nil {
			n, _ := strconv.Atoi(m[2])
			b, _ := strconv.ParseBool(m[3])
			ex = &excerpt{max: n, ellipsis: b}
			p = m[1]
		}
		node := tree
		keys := strings.Split(p, ".")
		for i, k := range keys {
			n, ok := node[k]
			if !ok {
				n = &fieldNode{}
				node[k] = n
			}
			if i == len(keys)-1 {
				if ex != nil {
					n.excerpt = ex
				}
				continue
			}
			if n.children == nil {
				n.children = fieldTree{}
			}
			node = n.children
		}
	}
	return tree
}

// pickFields keeps the keys named by tree; arrays apply it per item.
func pickFields(v any, tree fieldTree) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, it := range x {
			out[i] = pickFields(it, tree)
		}
		return out
	case map[string]any:
		out := map[string]any{}
		star := tree["*"]
		for k, val := range x {
			n, ok := tree[k]
			if !ok {
				if star == nil {
					continue
				}
				n = star
			}
			out[k] = applyNode(val, n)
		}
		return out
	}
	return v
}

func applyNode(v any, n *fieldNode) any {
	if n.excerpt != nil {
		if s, ok := v.(string); ok {
			return makeExcerpt(s, n.excerpt)
		}
	}
	if len(n.children) > 0 {
		return pickFields(v, n.children)
	}
	return v
}

var (
	tagRe   = regexp.MustCompile(`(?s)<[^>]*>`)
	styleRe = regexp.MustCompile(`(?is)<(script|style)[^>]*>.*?</(script|style)>`)
	spaceRe = regexp.MustCompile(`\s+`)
)

// makeExcerpt strips HTML, collapses whitespace and cuts to max runes.
func makeExcerpt(s string, ex *excerpt) string {
	s = styleRe.ReplaceAllString(s, " ")
	s = tagRe.ReplaceAllString(s, " ")
	s = html.UnescapeString(s)
	s = strings.TrimSpace(spaceRe.ReplaceAllString(s, " "))
	if utf8.RuneCountInString(s) <= ex.max {
		return s
	}
	r := []rune(s)
	out := strings.TrimSpace(string(r[:ex.max]))
	if ex.ellipsis {
		out += "..."
	}
	return out
}
