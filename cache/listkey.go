package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/filter"
)

// ListQuery is one list request as the cache sees it: everything its
// response body can depend on.
type ListQuery struct {
	Schema     strata.Schema
	Collection *strata.Collection
	Request    *strata.RequestInfo
	// Method is the HTTP method (@request.method).
	Method string
	// Query is the whole query string: page, perPage, sort, filter,
	// skipTotal, expand, fields and any @request.query.* a rule reads.
	Query url.Values
}

// listRef is a cacheable list request: the hash of its inputs and the
// collections whose writes must invalidate it, sorted.
type listRef struct {
	hash        string
	collections []string
}

// keyBuilder checks that a list's response depends only on inputs the key
// covers. The rows a page shows come from the listed collection and the
// expanded ones, whose generations are in the key; their rules may only
// read those rows and @request values the key holds. Anything else (a
// rule joining a third collection through a relation path, a back-relation
// or @collection, @request.headers, time macros, random order, view
// collections whose rows come from other tables) makes the list
// uncacheable: the simplest choice that is correct, and the common rules
// (owner = @request.auth.id, public lists) stay cacheable.
type keyBuilder struct {
	schema strata.Schema
	su     bool
	colls  []*strata.Collection
	// usesAuth: a rule or filter reads @request.auth.*.
	usesAuth bool
}

var viaRe = regexp.MustCompile(`^(\w+)_via_(\w+)$`)

// maxExpandDepth matches the service's expand depth limit.
const maxExpandDepth = 6

// listKey derives the key of q, or false if q must not be cached.
func listKey(q ListQuery) (listRef, bool) {
	c := q.Collection
	if c == nil || q.Schema == nil || (q.Method != "GET" && q.Method != "HEAD") {
		return listRef{}, false
	}
	b := &keyBuilder{schema: q.Schema, su: q.Request.IsSuperuser()}
	if !b.add(c, false) {
		return listRef{}, false
	}
	if !b.su && (c.ListRule == nil || !b.rule(c, *c.ListRule)) {
		// A nil listRule is a 403 for this caller: never cached.
		return listRef{}, false
	}
	if f := q.Query.Get("filter"); f != "" && !b.rule(c, f) {
		return listRef{}, false
	}
	if !b.sort(c, q.Query.Get("sort")) || !b.expand(c, q.Query.Get("expand")) {
		return listRef{}, false
	}

	h := sha256.New()
	part := func(s string) {
		// Length-prefixed, so that no two part lists hash alike.
		h.Write(strconv.AppendInt(nil, int64(len(s)), 10))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	part("strata-list-v1")
	part(q.Method)
	ids := make([]string, 0, len(b.colls))
	for _, x := range b.colls {
		fp, ok := collectionPrint(x)
		if !ok {
			return listRef{}, false
		}
		part(fp)
		ids = append(ids, x.ID)
	}
	if !b.caller(part, q.Request) {
		return listRef{}, false
	}
	part(q.Query.Encode())
	slices.Sort(ids)
	return listRef{hash: hex.EncodeToString(h.Sum(nil)), collections: slices.Compact(ids)}, true
}

// caller adds who is asking, as far as the response depends on it:
// superusers see everything alike; otherwise the caller's identity and
// auth record matter when a rule reads @request.auth or an auth
// collection's emails are involved (the owner and managers see emails
// others do not). Otherwise the page is the same for every non-superuser.
func (b *keyBuilder) caller(part func(string), req *strata.RequestInfo) bool {
	switch {
	case b.su && !b.usesAuth:
		part("superuser")
		return true
	case !b.su && !b.usesAuth && !slices.ContainsFunc(b.colls, (*strata.Collection).IsAuth):
		part("anyone")
		return true
	case req == nil || req.Auth == nil || req.Auth.Collection == nil:
		part("guest")
		return true
	}
	data, err := json.Marshal(req.Auth.Data)
	if err != nil {
		return false
	}
	part("auth")
	part(req.Auth.Collection.ID)
	part(string(data))
	return true
}

// add records a collection the page reads rows of; expanded ones have
// their viewRule (and an auth collection its manageRule, which decides
// email visibility) checked for cacheability.
func (b *keyBuilder) add(c *strata.Collection, expanded bool) bool {
	if c.Type == strata.CollectionView {
		return false
	}
	if slices.Contains(b.colls, c) {
		return true
	}
	b.colls = append(b.colls, c)
	if b.su {
		return true
	}
	if expanded && c.ViewRule != nil && !b.rule(c, *c.ViewRule) {
		return false
	}
	if c.IsAuth() && c.Auth != nil && c.Auth.ManageRule != nil && !b.rule(c, *c.Auth.ManageRule) {
		return false
	}
	return true
}

// rule reports whether src, evaluated against rows of c, reads only c's
// own row and @request values in the key.
func (b *keyBuilder) rule(c *strata.Collection, src string) bool {
	if strings.TrimSpace(src) == "" {
		return true
	}
	e, err := filter.ParseCached(src)
	if err != nil {
		return false
	}
	return b.expr(c, e)
}

func (b *keyBuilder) expr(c *strata.Collection, e filter.Expr) bool {
	switch x := e.(type) {
	case *filter.Logical:
		return b.expr(c, x.Left) && b.expr(c, x.Right)
	case *filter.Compare:
		return b.operand(c, x.Left) && b.operand(c, x.Right)
	}
	return false
}

func (b *keyBuilder) operand(c *strata.Collection, o filter.Operand) bool {
	switch x := o.(type) {
	case *filter.Number, *filter.Text:
		return true
	case *filter.Ident:
		return b.ident(c, x.Name)
	case *filter.Call:
		switch x.Name {
		case "geoDistance":
			for _, a := range x.Args {
				if !b.operand(c, a) {
					return false
				}
			}
			return true
		case "strftime":
			// strftime(format, field) only: a text time argument may be
			// 'now', and modifiers shift by the clock.
			if len(x.Args) == 1 {
				return true
			}
			id, ok := x.Args[1].(*filter.Ident)
			return len(x.Args) == 2 && ok && b.ident(c, id.Name)
		}
	}
	return false
}

func (b *keyBuilder) ident(c *strata.Collection, name string) bool {
	name, _, _ = strings.Cut(name, ":")
	switch strings.ToLower(name) {
	case "null", "true", "false":
		return true
	}
	if rest, ok := strings.CutPrefix(name, "@request."); ok {
		parts := strings.Split(rest, ".")
		switch parts[0] {
		case "auth":
			// The auth record's own fields are in the key; a longer path
			// walks a relation into rows the key does not cover.
			b.usesAuth = true
			return len(parts) == 2
		case "query", "body":
			// The query string is in the key; a list request has no body.
			return len(parts) == 2
		case "method", "context":
			return len(parts) == 1
		}
		return false // headers, and anything unknown
	}
	if strings.HasPrefix(name, "@") || strings.HasPrefix(name, "#") {
		return false // @collection, and macros that follow the clock
	}
	parts := strings.Split(name, ".")
	f := c.Field(parts[0])
	if f == nil {
		return false // back-relations, unknown fields
	}
	return len(parts) == 1 || f.Type != strata.FieldRelation
}

func (b *keyBuilder) sort(c *strata.Collection, spec string) bool {
	if strings.TrimSpace(spec) == "" {
		return true
	}
	for _, k := range strings.Split(spec, ",") {
		k = strings.TrimLeft(strings.TrimSpace(k), "+-")
		switch k {
		case "@random":
			return false
		case "@rowid":
			continue
		}
		if !b.ident(c, k) {
			return false
		}
	}
	return true
}

// expand adds the collections named by the expand parameter, resolving
// paths as the service does; parts it would ignore are ignored here too.
func (b *keyBuilder) expand(c *strata.Collection, spec string) bool {
	for _, path := range strings.Split(spec, ",") {
		cur := c
		for i, part := range strings.Split(strings.TrimSpace(path), ".") {
			if i >= maxExpandDepth || part == "" {
				break
			}
			var next *strata.Collection
			if f := cur.Field(part); f != nil && f.Type == strata.FieldRelation {
				next = b.schema.Collection(f.CollectionID)
			} else if m := viaRe.FindStringSubmatch(part); m != nil {
				if src := b.schema.Collection(m[1]); src != nil {
					if f := src.Field(m[2]); f != nil && f.Type == strata.FieldRelation && f.CollectionID == cur.ID {
						next = src
					}
				}
			}
			if next == nil {
				break
			}
			if !b.add(next, true) {
				return false
			}
			cur = next
		}
	}
	return true
}

// prints memoises collectionPrint per definition: the registry swaps in
// new *Collection values on every schema change, so a pointer names one
// version of a definition.
var (
	prints    sync.Map // *strata.Collection → string
	printsLen atomic.Int64
)

// collectionPrint is c's full definition (rules, fields, manageRule), so
// a schema change never serves a page built under the old one.
func collectionPrint(c *strata.Collection) (string, bool) {
	if v, ok := prints.Load(c); ok {
		return v.(string), true
	}
	def, err := json.Marshal(c)
	if err != nil {
		return "", false
	}
	fp := string(def)
	if c.Auth != nil && c.Auth.ManageRule != nil {
		fp += "\x00manageRule:" + *c.Auth.ManageRule
	}
	if n := printsLen.Add(1); n > 1000 {
		// Old definitions accumulate across schema changes: start over.
		prints.Clear()
		printsLen.Store(0)
	}
	prints.Store(c, fp)
	return fp, true
}
