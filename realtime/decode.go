package realtime

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/strata-run/strata"
)

// decodeRecord rebuilds a record of c from a change-log entry's JSON (the
// stored row, hidden fields included), typing values as the store does:
// multiple select/relation/file fields become []string. Fields the entry
// lacks (added since) keep their zero value.
func decodeRecord(c *strata.Collection, raw json.RawMessage) (*strata.Record, error) {
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		return nil, fmt.Errorf("decode change of %q: %w", c.Name, err)
	}
	r := strata.NewRecord(c)
	for _, f := range c.Fields {
		v, ok := data[f.Name]
		if !ok {
			continue
		}
		switch f.Type {
		case strata.FieldSelect, strata.FieldRelation, strata.FieldFile:
			if f.IsMultiple() {
				list := []string{}
				if items, ok := v.([]any); ok {
					for _, it := range items {
						if s, ok := it.(string); ok {
							list = append(list, s)
						}
					}
				}
				v = list
			} else if _, ok := v.(string); !ok {
				v = ""
			}
		}
		r.Data[f.Name] = v
	}
	return r, nil
}

func lower(s string) string { return strings.ToLower(s) }

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
