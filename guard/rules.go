package guard

import (
	"strings"
	"time"
)

// Rule is one rate-limit rule in PocketBase's settings shape, resolved.
type Rule struct {
	Label       string
	Audience    string // "", "@guest" or "@auth"
	MaxRequests int
	Window      time.Duration
}

// Target is what a request looks like to the rules.
type Target struct {
	Method, Path       string
	Collection, Action string // set on collection routes ("posts", "create")
	Authenticated      bool
}

// Match returns the rule that applies to t, or nil. Labels are tried from
// the most specific: "<collection>:<action>", "*:<action>", "<METHOD> <path>",
// "<path>", then path prefixes ending in "/" (longest first, with or
// without a method). For one label, a rule for the caller's audience wins
// over one for everyone.
func Match(rules []Rule, t Target) *Rule {
	audience := "@guest"
	if t.Authenticated {
		audience = "@auth"
	}
	// pick finds the rule labelled a+sep+b without building the label:
	// Match runs on every request.
	pick := func(a, sep, b string) *Rule {
		var any *Rule
		for i := range rules {
			r := &rules[i]
			if !joinedIs(r.Label, a, sep, b) {
				continue
			}
			switch r.Audience {
			case audience:
				return r
			case "":
				any = r
			}
		}
		return any
	}
	if t.Collection != "" && t.Action != "" {
		if r := pick(t.Collection, ":", t.Action); r != nil {
			return r
		}
	}
	if t.Action != "" {
		if r := pick("*", ":", t.Action); r != nil {
			return r
		}
	}
	if r := pick(t.Method, " ", t.Path); r != nil {
		return r
	}
	if r := pick(t.Path, "", ""); r != nil {
		return r
	}
	var best *Rule
	bestLen := -1
	for i := range rules {
		r := &rules[i]
		label := r.Label
		if m, p, ok := strings.Cut(label, " "); ok {
			if m != t.Method {
				continue
			}
			label = p
		}
		if !strings.HasSuffix(label, "/") || !strings.HasPrefix(t.Path, label) {
			continue
		}
		if r.Audience != "" && r.Audience != audience {
			continue
		}
		// Longer prefixes are more specific; for equal ones the caller's
		// audience beats everyone.
		if n := len(label); n > bestLen || (n == bestLen && r.Audience != "" && best.Audience == "") {
			best, bestLen = r, n
		}
	}
	return best
}

// joinedIs reports whether label == a+sep+b.
func joinedIs(label, a, sep, b string) bool {
	return len(label) == len(a)+len(sep)+len(b) && strings.HasPrefix(label, a) &&
		label[len(a):len(a)+len(sep)] == sep && label[len(a)+len(sep):] == b
}
