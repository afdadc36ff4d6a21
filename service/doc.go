package service

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Doc is a record as a caller may see it: a JSON object whose keys keep the
// collection's field order. It encodes itself without reflection or key
// sorting, which is most of the cost of a list response with encoding/json.
type Doc struct {
	keys []string
	vals []any
}

func newDoc(n int) *Doc { return &Doc{keys: make([]string, 0, n), vals: make([]any, 0, n)} }

// Set adds or replaces a key.
func (d *Doc) Set(k string, v any) {
	if i := slices.Index(d.keys, k); i >= 0 {
		d.vals[i] = v
		return
	}
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
}

// Get returns a key's value.
func (d *Doc) Get(k string) (any, bool) {
	if i := slices.Index(d.keys, k); i >= 0 {
		return d.vals[i], true
	}
	return nil, false
}

// Delete removes a key.
func (d *Doc) Delete(k string) {
	if i := slices.Index(d.keys, k); i >= 0 {
		d.keys = slices.Delete(d.keys, i, i+1)
		d.vals = slices.Delete(d.vals, i, i+1)
	}
}

// Map converts the document (and nested documents) to plain maps, for
// callers that reshape it (the ?fields= picker).
func (d *Doc) Map() map[string]any {
	m := make(map[string]any, len(d.keys))
	for i, k := range d.keys {
		m[k] = plain(d.vals[i])
	}
	return m
}

func plain(v any) any {
	switch x := v.(type) {
	case *Doc:
		return x.Map()
	case []*Doc:
		out := make([]any, len(x))
		for i, d := range x {
			out[i] = d.Map()
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, v := range x {
			out[k] = plain(v)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	}
	return v
}

// MarshalJSON implements json.Marshaler.
func (d *Doc) MarshalJSON() ([]byte, error) { return d.AppendJSON(nil), nil }

// AppendJSON appends the document's JSON encoding to b.
func (d *Doc) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	for i, k := range d.keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendValue(b, d.vals[i])
	}
	return append(b, '}')
}

func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendString(b, x)
	case float64:
		return appendFloat(b, x)
	case bool:
		return strconv.AppendBool(b, x)
	case []string:
		b = append(b, '[')
		for i, s := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		return append(b, ']')
	case *Doc:
		return x.AppendJSON(b)
	case []*Doc:
		b = append(b, '[')
		for i, d := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = d.AppendJSON(b)
		}
		return append(b, ']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendValue(b, x[k])
		}
		return append(b, '}')
	case []any:
		b = append(b, '[')
		for i, it := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, it)
		}
		return append(b, ']')
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...)
	}
	return append(b, raw...)
}

// appendFloat formats like encoding/json: integers without exponent or
// decimals, 'e' only for very small or large magnitudes.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString writes a JSON string, escaping what JSON requires plus
// <, > and & (as encoding/json does, so HTML embedding stays safe) and the
// line separators U+2028/U+2029.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
