package filter

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/strata-run/strata"
)

// reqResult is a resolved @request.* identifier, shared by Compile and Eval
// so both see the same values.
type reqResult struct {
	v      any // scalar: nil, string, int64 or float64
	list   []any
	isList bool
	// changed is set for @request.body.<field>:changed when the key was
	// sent; v then holds the submitted value in storage form.
	changed *strata.Field
	// rel is set for a relation path walked from submitted or auth ids.
	rel    *strata.Field
	ids    []string
	rest   []string
	relKey string
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func jsonText(v any) string {
	if s, ok := v.([]string); ok && s == nil {
		return "[]"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// scalarize converts a Go value (record data or request body) to the scalar
// SQL sees: bools as 1/0, integral numbers as int64, lists and objects as
// JSON text.
func scalarize(v any) any {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return v
	case bool:
		return boolInt(v)
	case float64:
		return normNumber(v)
	case float32:
		return normNumber(float64(v))
	case int:
		return int64(v)
	case int64:
		return v
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return normNumber(f)
	}
	return jsonText(v)
}

// listOf returns the items of a list value (nil for non-lists).
func listOf(v any) ([]any, bool) {
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = scalarize(x)
		}
		return out, true
	case []string:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = x
		}
		return out, true
	}
	return nil, false
}

func idsOf(v any) []string {
	switch v := v.(type) {
	case string:
		if v == "" {
			return nil
		}
		return []string{v}
	case []string:
		return v
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// navigate walks object keys and array indexes of a decoded JSON value.
func navigate(v any, path []string) (any, bool) {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[p]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		case []string:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

func applyListMod(v any, mod string) (reqResult, error) {
	switch mod {
	case modEach:
		l, _ := listOf(v)
		return reqResult{list: l, isList: true}, nil
	case modLength:
		l, _ := listOf(v)
		return reqResult{v: int64(len(l))}, nil
	}
	return reqResult{v: scalarize(v)}, nil
}

func resolveRequest(env *Env, segs []string, mod string) (reqResult, error) {
	req := env.Request
	if req == nil {
		req = &strata.RequestInfo{}
	}
	if mod == modChanged && (len(segs) != 2 || segs[0] != "body") {
		return reqResult{}, invalid("Invalid filter: :changed only applies to @request.body.<field>.")
	}
	isset := mod == modIsset
	switch segs[0] {
	case "auth":
		if req.Auth == nil || len(segs) < 2 {
			if isset {
				return reqResult{v: int64(0)}, nil
			}
			return reqResult{}, nil
		}
		return authPath(req.Auth, segs[1:], mod)
	case "body":
		if len(segs) < 2 {
			return reqResult{v: boolInt(isset && len(req.Body) > 0)}, nil
		}
		key := segs[1]
		raw, sent := req.Body[key]
		var f *strata.Field
		if env.Collection != nil {
			f = env.Collection.Field(key)
		}
		if mod == modChanged {
			if f == nil {
				return reqResult{}, invalid("Invalid filter: unknown field %q.", key)
			}
			if !sent {
				return reqResult{v: int64(0)}, nil
			}
			return reqResult{changed: f, v: storageValue(f, raw)}, nil
		}
		if f != nil && f.Type == strata.FieldRelation && len(segs) > 2 && !isset {
			ids := idsOf(raw)
			if !f.IsMultiple() && len(segs) == 3 && segs[2] == "id" {
				if len(ids) == 0 {
					return reqResult{}, nil
				}
				return reqResult{v: ids[0]}, nil
			}
			return reqResult{rel: f, ids: ids, rest: segs[2:], relKey: "body." + key}, nil
		}
		v, ok := navigate(raw, segs[2:])
		if isset {
			return reqResult{v: boolInt(sent && ok)}, nil
		}
		if !ok {
			return reqResult{}, nil
		}
		return applyListMod(v, mod)
	case "query", "headers":
		m := req.Query
		if segs[0] == "headers" {
			m = req.Headers
		}
		var v any
		ok := false
		if len(segs) == 2 {
			v, ok = m[segs[1]]
		}
		if isset {
			return reqResult{v: boolInt(ok)}, nil
		}
		if !ok {
			return reqResult{}, nil
		}
		return reqResult{v: v}, nil
	case "method":
		if len(segs) == 1 {
			if isset {
				return reqResult{v: boolInt(req.Method != "")}, nil
			}
			return reqResult{v: req.Method}, nil
		}
	case "context":
		if len(segs) == 1 {
			ctx := req.Context
			if ctx == "" {
				ctx = strata.ContextDefault
			}
			if isset {
				return reqResult{v: int64(1)}, nil
			}
			return reqResult{v: ctx}, nil
		}
	}
	if isset {
		return reqResult{v: int64(0)}, nil
	}
	return reqResult{}, nil
}

// storageValue converts a submitted value to what the field's column holds.
func storageValue(f *strata.Field, v any) any {
	switch {
	case f.IsMultiple():
		ids := idsOf(v)
		if ids == nil {
			ids = []string{}
		}
		return jsonText(ids)
	case f.Type == strata.FieldJSON || f.Type == strata.FieldGeoPoint:
		return scalarize(v)
	}
	return scalarize(v)
}

func authPath(auth *strata.Record, segs []string, mod string) (reqResult, error) {
	coll := auth.Collection
	name, rest := segs[0], segs[1:]
	var f *strata.Field
	if coll != nil {
		f = coll.Field(name)
	}
	if f == nil {
		var v any
		switch {
		case name == "collectionId" && coll != nil:
			v = coll.ID
		case name == "collectionName" && coll != nil:
			v = coll.Name
		default:
			if mod == modIsset {
				return reqResult{v: int64(0)}, nil
			}
			return reqResult{}, nil
		}
		if mod == modIsset {
			return reqResult{v: int64(1)}, nil
		}
		if len(rest) > 0 {
			return reqResult{}, nil
		}
		return reqResult{v: v}, nil
	}
	raw := auth.Data[f.Name]
	if mod == modIsset {
		_, ok := auth.Data[f.Name]
		return reqResult{v: boolInt(ok)}, nil
	}
	if len(rest) == 0 {
		if f.IsMultiple() {
			if mod == modEach || mod == modLength {
				return applyListMod(raw, mod)
			}
			return reqResult{v: storageValue(f, raw)}, nil
		}
		return reqResult{v: scalarize(raw)}, nil
	}
	switch f.Type {
	case strata.FieldJSON, strata.FieldGeoPoint:
		v, ok := navigate(raw, rest)
		if !ok {
			return reqResult{}, nil
		}
		return reqResult{v: scalarize(v)}, nil
	case strata.FieldRelation:
		ids := idsOf(raw)
		if !f.IsMultiple() && len(rest) == 1 && rest[0] == "id" {
			if len(ids) == 0 {
				return reqResult{}, nil
			}
			return reqResult{v: ids[0]}, nil
		}
		return reqResult{rel: f, ids: ids, rest: rest, relKey: "auth." + strings.Join(segs[:1], ".")}, nil
	}
	return reqResult{}, nil
}
