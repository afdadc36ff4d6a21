package strata

import (
	"time"
)

// Record is one row of a collection. Data maps field names to values typed
// by the field: string (text, email, url, editor, date, autodate, password
// hash, single select/relation/file), float64 (number), bool, []string
// (multiple select/relation/file), and any decoded JSON value (json, geoPoint).
type Record struct {
	Collection *Collection
	Data       map[string]any
	// Expand holds expanded relations by path name: *Record or []*Record.
	Expand map[string]any
}

// NewRecord returns a record of c with every field at its zero value.
func NewRecord(c *Collection) *Record {
	r := &Record{Collection: c, Data: make(map[string]any, len(c.Fields))}
	for _, f := range c.Fields {
		r.Data[f.Name] = f.ZeroValue()
	}
	return r
}

// ID returns the record's id.
func (r *Record) ID() string { return r.String("id") }

// String returns a string field's value, or "".
func (r *Record) String(name string) string {
	s, _ := r.Data[name].(string)
	return s
}

// Bool returns a bool field's value.
func (r *Record) Bool(name string) bool {
	b, _ := r.Data[name].(bool)
	return b
}

// Strings returns a field's values as a list: the items of a multiple field,
// or the single value (if non-empty) of a single one.
func (r *Record) Strings(name string) []string {
	switch v := r.Data[name].(type) {
	case []string:
		return v
	case string:
		if v == "" {
			return nil
		}
		return []string{v}
	}
	return nil
}

// Clone returns a copy whose Data can be changed without affecting r.
// Values are shared except []string, which is copied.
func (r *Record) Clone() *Record {
	out := &Record{Collection: r.Collection, Data: make(map[string]any, len(r.Data))}
	for k, v := range r.Data {
		if s, ok := v.([]string); ok {
			v = append([]string(nil), s...)
		}
		out.Data[k] = v
	}
	return out
}

// DateLayout is the wire and storage format of dates (API.md §1.4).
const DateLayout = "2006-01-02 15:04:05.000Z"

// FormatDate formats t in DateLayout (UTC); the zero time is "".
func FormatDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(DateLayout)
}

// NowDate is the current time in DateLayout.
func NowDate() string { return FormatDate(time.Now()) }

var dateLayouts = []string{
	DateLayout,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05",
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04",
	"2006-01-02",
}

// ParseDate parses the date formats clients commonly send. The second
// result is false when s is not a date; callers store the zero value then.
func ParseDate(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}
