package service

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/strata-run/strata"
)

// Default size limits of PocketBase's field types.
const (
	defaultTextMax     = 5000
	defaultEditorMax   = 5 << 20
	defaultJSONMax     = 1 << 20
	defaultPasswordMax = 71
)

// toText coerces a scalar to a string (API.md §4: 12.5 → "12.5", null → "").
func toText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return x.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func toNumber(v any) float64 {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0
		}
		return x
	case bool:
		if x {
			return 1
		}
		return 0
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0
		}
		return f
	case json.Number:
		f, _ := x.Float64()
		return f
	}
	return 0
}

func toBool(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case float64:
		return x != 0
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		return err == nil && b
	}
	return false
}

// toList normalizes a select/relation/file value to a de-duplicated list
// without empty items. A string containing "[" is tried as a JSON array.
func toList(v any) []string {
	var raw []any
	switch x := v.(type) {
	case nil:
		return []string{}
	case []string:
		for _, s := range x {
			raw = append(raw, s)
		}
	case []any:
		raw = x
	case string:
		if strings.Contains(x, "[") {
			var arr []any
			if json.Unmarshal([]byte(x), &arr) == nil {
				raw = arr
				break
			}
		}
		raw = []any{x}
	default:
		raw = []any{toText(x)}
	}
	out := make([]string, 0, len(raw))
	seen := map[string]bool{}
	for _, item := range raw {
		s := toText(item)
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}

// toJSONValue applies PocketBase's json field coercion: a string that is
// itself JSON (number, string, array, object, null, true, false) is parsed.
func toJSONValue(v any) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	t := strings.TrimSpace(s)
	if t == "" {
		return s
	}
	if c := t[0]; c == '-' || c == '"' || c == '[' || c == '{' || (c >= '0' && c <= '9') || t == "null" || t == "true" || t == "false" {
		var parsed any
		if json.Unmarshal([]byte(t), &parsed) == nil {
			return parsed
		}
	}
	return s
}

// coerce converts an input value to the field's stored type.
func coerce(f *strata.Field, v any) any {
	switch f.Type {
	case strata.FieldNumber:
		return toNumber(v)
	case strata.FieldBool:
		return toBool(v)
	case strata.FieldDate:
		switch x := v.(type) {
		case float64:
			return strata.FormatDate(unixTime(x))
		case string:
			if t, ok := strata.ParseDate(strings.TrimSpace(x)); ok {
				return strata.FormatDate(t)
			}
			if n, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil && !strings.Contains(x, "-") {
				return strata.FormatDate(unixTime(n))
			}
		}
		return ""
	case strata.FieldJSON:
		return toJSONValue(v)
	case strata.FieldGeoPoint:
		if s, ok := v.(string); ok {
			var m map[string]any
			if json.Unmarshal([]byte(s), &m) == nil {
				v = m
			}
		}
		m, _ := v.(map[string]any)
		return map[string]any{"lon": toNumber(m["lon"]), "lat": toNumber(m["lat"])}
	case strata.FieldSelect, strata.FieldRelation, strata.FieldFile:
		list := toList(v)
		if f.IsMultiple() {
			return list
		}
		if len(list) == 0 {
			return ""
		}
		return list[len(list)-1]
	}
	return toText(v)
}

// validateValue checks a coerced value against the field's options. It
// does not check relation existence (that needs the store).
func validateValue(f *strata.Field, v any) *strata.FieldError {
	if f.Required && isEmptyValue(f, v) {
		return strata.NewFieldError("validation_required", "Cannot be blank.", nil)
	}
	switch f.Type {
	case strata.FieldText:
		s, _ := v.(string)
		if s == "" {
			return nil
		}
		n := utf8.RuneCountInString(s)
		max := f.Max
		if max <= 0 {
			max = defaultTextMax
		}
		if f.Min > 0 && n < f.Min {
			return strata.NewFieldError("validation_min_text_constraint", fmt.Sprintf("Must be at least %d character(s).", f.Min), map[string]any{"min": f.Min})
		}
		if n > max {
			return strata.NewFieldError("validation_max_text_constraint", fmt.Sprintf("Must be no more than %d character(s).", max), map[string]any{"max": max})
		}
		if f.Pattern != "" {
			re, err := cachedRegexp(f.Pattern)
			if err != nil || !re.MatchString(s) {
				return strata.NewFieldError("validation_invalid_format", "Invalid value format.", nil)
			}
		}
	case strata.FieldEditor:
		s, _ := v.(string)
		max := f.MaxSize
		if max <= 0 {
			max = defaultEditorMax
		}
		if int64(len(s)) > max {
			return strata.NewFieldError("validation_content_size_limit", fmt.Sprintf("The maximum allowed content size is %d bytes.", max), map[string]any{"maxSize": max})
		}
	case strata.FieldNumber:
		n, _ := v.(float64)
		if n == 0 {
			return nil
		}
		if f.OnlyInt && n != math.Trunc(n) {
			return strata.NewFieldError("validation_only_int_constraint", "Decimal numbers are not allowed.", nil)
		}
		if f.NumMin != nil && n < *f.NumMin {
			return strata.NewFieldError("validation_min_number_constraint", "Must be greater or equal than "+toText(*f.NumMin)+".", map[string]any{"min": *f.NumMin})
		}
		if f.NumMax != nil && n > *f.NumMax {
			return strata.NewFieldError("validation_max_number_constraint", "Must be less or equal than "+toText(*f.NumMax)+".", map[string]any{"max": *f.NumMax})
		}
	case strata.FieldEmail:
		s, _ := v.(string)
		if s == "" {
			return nil
		}
		if !validEmail(s) {
			return strata.NewFieldError("validation_is_email", "Must be a valid email address.", nil)
		}
		if !domainAllowed(s[strings.LastIndexByte(s, '@')+1:], f) {
			return strata.NewFieldError("validation_email_domain_not_allowed", "Email domain is not allowed.", nil)
		}
	case strata.FieldURL:
		s, _ := v.(string)
		if s == "" {
			return nil
		}
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" || u.Host == "" || strings.ContainsAny(s, " \t\n") {
			return strata.NewFieldError("validation_invalid_url", "Must be a valid url.", nil)
		}
		if !domainAllowed(u.Hostname(), f) {
			return strata.NewFieldError("validation_url_domain_not_allowed", "Url domain is not allowed.", nil)
		}
	case strata.FieldDate:
		s, _ := v.(string)
		if s == "" {
			return nil
		}
		if f.DateMin != "" {
			if min, ok := strata.ParseDate(f.DateMin); ok && s < strata.FormatDate(min) {
				return strata.NewFieldError("validation_min_date_constraint", "Must be no earlier than "+strata.FormatDate(min)+".", map[string]any{"min": strata.FormatDate(min)})
			}
		}
		if f.DateMax != "" {
			if max, ok := strata.ParseDate(f.DateMax); ok && s > strata.FormatDate(max) {
				return strata.NewFieldError("validation_max_date_constraint", "Must be no later than "+strata.FormatDate(max)+".", map[string]any{"max": strata.FormatDate(max)})
			}
		}
	case strata.FieldSelect:
		list := listOf(v)
		for _, item := range list {
			if !contains(f.Values, item) {
				return strata.NewFieldError("validation_invalid_value", "Invalid value "+item+".", map[string]any{"value": item})
			}
		}
		if f.IsMultiple() && len(list) > f.MaxSelect {
			return strata.NewFieldError("validation_too_many_values", fmt.Sprintf("Select no more than %d.", f.MaxSelect), map[string]any{"maxSelect": f.MaxSelect})
		}
	case strata.FieldRelation:
		list := listOf(v)
		if len(list) > 0 && f.MinSelect > 0 && len(list) < f.MinSelect {
			return strata.NewFieldError("validation_not_enough_values", fmt.Sprintf("Select at least %d.", f.MinSelect), map[string]any{"minSelect": f.MinSelect})
		}
		if f.IsMultiple() && len(list) > f.MaxSelect {
			return strata.NewFieldError("validation_too_many_values", fmt.Sprintf("Select no more than %d.", f.MaxSelect), map[string]any{"maxSelect": f.MaxSelect})
		}
	case strata.FieldFile:
		if f.IsMultiple() && len(listOf(v)) > f.MaxSelect {
			return strata.NewFieldError("validation_too_many_files", fmt.Sprintf("The maximum allowed files is %d.", f.MaxSelect), map[string]any{"maxSelect": f.MaxSelect})
		}
	case strata.FieldJSON:
		b, err := json.Marshal(v)
		if err != nil {
			return strata.NewFieldError("validation_invalid_json", "Must be a valid json value.", nil)
		}
		max := f.MaxSize
		if max <= 0 {
			max = defaultJSONMax
		}
		if int64(len(b)) > max {
			return strata.NewFieldError("validation_json_size_limit", fmt.Sprintf("The maximum allowed JSON size is %d bytes.", max), map[string]any{"maxSize": max})
		}
	case strata.FieldGeoPoint:
		m, _ := v.(map[string]any)
		if lat := toNumber(m["lat"]); lat < -90 || lat > 90 {
			return strata.NewFieldError("validation_invalid_latitude", "Latitude must be between -90 and 90 degrees.", nil)
		}
		if lon := toNumber(m["lon"]); lon < -180 || lon > 180 {
			return strata.NewFieldError("validation_invalid_longitude", "Longitude must be between -180 and 180 degrees.", nil)
		}
	}
	return nil
}

// validatePassword checks a plain password before hashing.
func validatePassword(f *strata.Field, plain string) *strata.FieldError {
	n := utf8.RuneCountInString(plain)
	if plain == "" {
		if f.Required {
			return strata.NewFieldError("validation_required", "Cannot be blank.", nil)
		}
		return nil
	}
	min := max(f.Min, 1)
	maxLen := f.Max
	if maxLen <= 0 {
		maxLen = defaultPasswordMax
	}
	if n < min {
		return strata.NewFieldError("validation_min_text_constraint", fmt.Sprintf("Must be at least %d character(s).", min), map[string]any{"min": min})
	}
	if n > maxLen {
		return strata.NewFieldError("validation_max_text_constraint", fmt.Sprintf("Must be no more than %d character(s).", maxLen), map[string]any{"max": maxLen})
	}
	if f.Pattern != "" {
		if re, err := cachedRegexp(f.Pattern); err != nil || !re.MatchString(plain) {
			return strata.NewFieldError("validation_invalid_format", "Invalid value format.", nil)
		}
	}
	if isCommonPassword(plain) {
		return strata.NewFieldError("validation_common_password", "The password is too common, choose a less predictable one.", nil)
	}
	return nil
}

func isEmptyValue(f *strata.Field, v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case float64:
		return x == 0
	case bool:
		return !x
	case []string:
		return len(x) == 0
	case []any:
		return len(x) == 0
	case map[string]any:
		if f.Type == strata.FieldGeoPoint {
			return toNumber(x["lon"]) == 0 && toNumber(x["lat"]) == 0
		}
		return len(x) == 0
	}
	return false
}

func listOf(v any) []string {
	switch x := v.(type) {
	case []string:
		return x
	case string:
		if x == "" {
			return nil
		}
		return []string{x}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func validEmail(s string) bool {
	if len(s) > 254 || strings.ContainsAny(s, " \t\r\n<>\"") {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	return at > 0 && strings.Contains(s[at+1:], ".") && !strings.HasSuffix(s, ".")
}

func domainAllowed(domain string, f *strata.Field) bool {
	domain = strings.ToLower(domain)
	if len(f.OnlyDomains) > 0 {
		for _, d := range f.OnlyDomains {
			if strings.EqualFold(d, domain) {
				return true
			}
		}
		return false
	}
	for _, d := range f.ExceptDomains {
		if strings.EqualFold(d, domain) {
			return false
		}
	}
	return true
}

var regexpCache sync.Map // pattern → *regexp.Regexp

func cachedRegexp(pattern string) (*regexp.Regexp, error) {
	if re, ok := regexpCache.Load(pattern); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	regexpCache.Store(pattern, re)
	return re, nil
}

// generator produces random strings for autogeneratePattern, which is a
// sequence of literal characters and character classes with counts, such
// as "[a-z0-9]{15}" (the forms PocketBase's own defaults use).
type generator []genPart

type genPart struct {
	chars []rune
	n     int
}

var generatorCache sync.Map

func compileGenerator(pattern string) (generator, error) {
	if g, ok := generatorCache.Load(pattern); ok {
		return g.(generator), nil
	}
	var g generator
	rs := []rune(pattern)
	for i := 0; i < len(rs); {
		var part genPart
		if rs[i] == '[' {
			end := i + 1
			for end < len(rs) && rs[end] != ']' {
				end++
			}
			if end >= len(rs) || end == i+1 {
				return nil, fmt.Errorf("unterminated class")
			}
			class := rs[i+1 : end]
			for j := 0; j < len(class); j++ {
				if j+2 < len(class) && class[j+1] == '-' {
					if class[j] > class[j+2] {
						return nil, fmt.Errorf("bad range")
					}
					for c := class[j]; c <= class[j+2]; c++ {
						part.chars = append(part.chars, c)
					}
					j += 2
				} else {
					part.chars = append(part.chars, class[j])
				}
			}
			i = end + 1
		} else {
			if strings.ContainsRune(`\^$.|?*+(){}`, rs[i]) {
				return nil, fmt.Errorf("unsupported pattern syntax %q", rs[i])
			}
			part.chars = []rune{rs[i]}
			i++
		}
		part.n = 1
		if i < len(rs) && rs[i] == '{' {
			end := i + 1
			for end < len(rs) && rs[end] != '}' {
				end++
			}
			if end >= len(rs) {
				return nil, fmt.Errorf("unterminated count")
			}
			n, err := strconv.Atoi(string(rs[i+1 : end]))
			if err != nil || n < 0 || n > 255 {
				return nil, fmt.Errorf("bad count")
			}
			part.n = n
			i = end + 1
		}
		g = append(g, part)
	}
	generatorCache.Store(pattern, g)
	return g, nil
}

func (g generator) generate() string {
	var b strings.Builder
	for _, p := range g {
		for range p.n {
			k, err := rand.Int(rand.Reader, big.NewInt(int64(len(p.chars))))
			if err != nil {
				panic("crypto/rand: " + err.Error())
			}
			b.WriteRune(p.chars[k.Int64()])
		}
	}
	return b.String()
}

// NewRecordID returns a random 15-character [a-z0-9] id.
func NewRecordID() string {
	g, _ := compileGenerator("[a-z0-9]{15}")
	return g.generate()
}
