package strata

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"strconv"
)

// Field types, as PocketBase names them on the wire.
const (
	FieldText     = "text"
	FieldEditor   = "editor"
	FieldNumber   = "number"
	FieldBool     = "bool"
	FieldEmail    = "email"
	FieldURL      = "url"
	FieldDate     = "date"
	FieldAutodate = "autodate"
	FieldSelect   = "select"
	FieldRelation = "relation"
	FieldFile     = "file"
	FieldJSON     = "json"
	FieldPassword = "password"
	FieldGeoPoint = "geoPoint"
)

// KnownFieldType reports whether t is a field type Strata understands.
func KnownFieldType(t string) bool {
	switch t {
	case FieldText, FieldEditor, FieldNumber, FieldBool, FieldEmail, FieldURL, FieldDate,
		FieldAutodate, FieldSelect, FieldRelation, FieldFile, FieldJSON, FieldPassword, FieldGeoPoint:
		return true
	}
	return false
}

// Field is one column of a collection. It carries the options of every type;
// only those of its Type are meaningful and serialized, so that the JSON
// matches PocketBase's per-type field shapes exactly.
type Field struct {
	ID          string
	Name        string
	Type        string
	System      bool
	Hidden      bool
	Presentable bool
	Required    bool
	Help        string

	// text, password: rune length bounds (0 = default); editor, json, file: MaxSize in bytes.
	Min, Max            int
	Pattern             string
	AutogeneratePattern string // text
	PrimaryKey          bool   // text (the id field only)
	Cost                int    // password (bcrypt cost, kept for PocketBase compatibility)

	NumMin, NumMax *float64 // number
	OnlyInt        bool     // number

	DateMin, DateMax string // date

	OnCreate, OnUpdate bool // autodate

	Values []string // select

	MaxSelect, MinSelect int    // select, relation, file
	CollectionID         string // relation
	CascadeDelete        bool   // relation

	MaxSize     int64 // editor, json, file
	ConvertURLs bool  // editor

	OnlyDomains, ExceptDomains []string // email, url

	MimeTypes []string // file
	Thumbs    []string // file
	Protected bool     // file
}

// IsMultiple reports whether the field holds a list of values (a JSON array
// column) rather than a single value.
func (f *Field) IsMultiple() bool {
	switch f.Type {
	case FieldSelect, FieldRelation, FieldFile:
		return f.MaxSelect > 1
	}
	return false
}

// DefaultFieldID is PocketBase's deterministic field id: type + CRC32(name).
func DefaultFieldID(typ, name string) string {
	return typ + strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(name))), 10)
}

// ZeroValue is the value a field holds when nothing was stored (API.md §1.7).
func (f *Field) ZeroValue() any {
	switch f.Type {
	case FieldNumber:
		return float64(0)
	case FieldBool:
		return false
	case FieldJSON:
		return nil
	case FieldGeoPoint:
		return map[string]any{"lon": float64(0), "lat": float64(0)}
	case FieldSelect, FieldRelation, FieldFile:
		if f.IsMultiple() {
			return []string{}
		}
		return ""
	}
	return ""
}

// MarshalJSON writes the common keys plus the options of the field's type.
func (f *Field) MarshalJSON() ([]byte, error) {
	m := map[string]any{
		"id":          f.ID,
		"name":        f.Name,
		"type":        f.Type,
		"system":      f.System,
		"hidden":      f.Hidden,
		"presentable": f.Presentable,
	}
	if f.Type != FieldAutodate {
		m["help"] = f.Help
		m["required"] = f.Required
	}
	strs := func(s []string) any {
		if s == nil {
			return nil
		}
		return s
	}
	switch f.Type {
	case FieldText:
		m["min"], m["max"], m["pattern"] = f.Min, f.Max, f.Pattern
		m["autogeneratePattern"], m["primaryKey"] = f.AutogeneratePattern, f.PrimaryKey
	case FieldPassword:
		m["min"], m["max"], m["pattern"], m["cost"] = f.Min, f.Max, f.Pattern, f.Cost
	case FieldEditor:
		m["maxSize"], m["convertURLs"] = f.MaxSize, f.ConvertURLs
	case FieldNumber:
		m["min"], m["max"], m["onlyInt"] = f.NumMin, f.NumMax, f.OnlyInt
	case FieldBool, FieldGeoPoint:
	case FieldEmail, FieldURL:
		m["onlyDomains"], m["exceptDomains"] = strs(f.OnlyDomains), strs(f.ExceptDomains)
	case FieldDate:
		m["min"], m["max"] = f.DateMin, f.DateMax
	case FieldAutodate:
		m["onCreate"], m["onUpdate"] = f.OnCreate, f.OnUpdate
	case FieldSelect:
		vals := f.Values
		if vals == nil {
			vals = []string{}
		}
		m["values"], m["maxSelect"] = vals, f.MaxSelect
	case FieldRelation:
		m["collectionId"], m["cascadeDelete"] = f.CollectionID, f.CascadeDelete
		m["minSelect"], m["maxSelect"] = f.MinSelect, f.MaxSelect
	case FieldFile:
		m["maxSelect"], m["maxSize"], m["protected"] = f.MaxSelect, f.MaxSize, f.Protected
		m["mimeTypes"], m["thumbs"] = strs(f.MimeTypes), strs(f.Thumbs)
	case FieldJSON:
		m["maxSize"] = f.MaxSize
	}
	return json.Marshal(m)
}

// fieldJSON is the union of every type's keys, used for decoding. Keys whose
// type depends on the field type (min, max) are kept raw.
type fieldJSON struct {
	ID                  string          `json:"id"`
	Name                string          `json:"name"`
	Type                string          `json:"type"`
	System              bool            `json:"system"`
	Hidden              bool            `json:"hidden"`
	Presentable         bool            `json:"presentable"`
	Required            bool            `json:"required"`
	Help                string          `json:"help"`
	Min                 json.RawMessage `json:"min"`
	Max                 json.RawMessage `json:"max"`
	Pattern             string          `json:"pattern"`
	AutogeneratePattern string          `json:"autogeneratePattern"`
	PrimaryKey          bool            `json:"primaryKey"`
	Cost                int             `json:"cost"`
	OnlyInt             bool            `json:"onlyInt"`
	OnCreate            bool            `json:"onCreate"`
	OnUpdate            bool            `json:"onUpdate"`
	Values              []string        `json:"values"`
	MaxSelect           int             `json:"maxSelect"`
	MinSelect           int             `json:"minSelect"`
	CollectionID        string          `json:"collectionId"`
	CascadeDelete       bool            `json:"cascadeDelete"`
	MaxSize             int64           `json:"maxSize"`
	ConvertURLs         bool            `json:"convertURLs"`
	OnlyDomains         []string        `json:"onlyDomains"`
	ExceptDomains       []string        `json:"exceptDomains"`
	MimeTypes           []string        `json:"mimeTypes"`
	Thumbs              []string        `json:"thumbs"`
	Protected           bool            `json:"protected"`
}

// UnmarshalJSON reads a field in PocketBase's shape. It fails with a
// *FieldError (so callers can report it per field) on a wrongly typed option.
func (f *Field) UnmarshalJSON(b []byte) error {
	var j fieldJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return NewFieldError("validation_invalid_value", "Invalid field definition.", nil)
	}
	*f = Field{
		ID: j.ID, Name: j.Name, Type: j.Type, System: j.System, Hidden: j.Hidden,
		Presentable: j.Presentable, Required: j.Required, Help: j.Help,
		Pattern: j.Pattern, AutogeneratePattern: j.AutogeneratePattern, PrimaryKey: j.PrimaryKey,
		Cost: j.Cost, OnlyInt: j.OnlyInt, OnCreate: j.OnCreate, OnUpdate: j.OnUpdate,
		Values: j.Values, MaxSelect: j.MaxSelect, MinSelect: j.MinSelect,
		CollectionID: j.CollectionID, CascadeDelete: j.CascadeDelete, MaxSize: j.MaxSize,
		ConvertURLs: j.ConvertURLs, OnlyDomains: j.OnlyDomains, ExceptDomains: j.ExceptDomains,
		MimeTypes: j.MimeTypes, Thumbs: j.Thumbs, Protected: j.Protected,
	}
	var err error
	switch j.Type {
	case FieldNumber:
		if f.NumMin, err = rawFloatPtr(j.Min); err == nil {
			f.NumMax, err = rawFloatPtr(j.Max)
		}
	case FieldDate:
		if f.DateMin, err = rawString(j.Min); err == nil {
			f.DateMax, err = rawString(j.Max)
		}
	default:
		if f.Min, err = rawInt(j.Min); err == nil {
			f.Max, err = rawInt(j.Max)
		}
	}
	if err != nil {
		return NewFieldError("validation_invalid_value", "Invalid min/max option.", nil)
	}
	return nil
}

func rawIsNull(b json.RawMessage) bool { return len(b) == 0 || string(b) == "null" }

func rawFloatPtr(b json.RawMessage) (*float64, error) {
	if rawIsNull(b) {
		return nil, nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func rawInt(b json.RawMessage) (int, error) {
	if rawIsNull(b) {
		return 0, nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return 0, err
	}
	if v != float64(int(v)) {
		return 0, fmt.Errorf("not an integer")
	}
	return int(v), nil
}

func rawString(b json.RawMessage) (string, error) {
	if rawIsNull(b) {
		return "", nil
	}
	var v string
	err := json.Unmarshal(b, &v)
	return v, err
}
