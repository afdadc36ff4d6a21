package service

import (
	"encoding/json"
	"math"
	"testing"
)

// TestDocEncodingMatchesEncodingJSON: the hand-written encoder must produce
// exactly what encoding/json would for the same values (key order aside).
func TestDocEncodingMatchesEncodingJSON(t *testing.T) {
	values := []any{
		nil, "", "plain", "quote\" back\\slash", "<tag>&amp;", "line\nbreak\ttab\rcr\x01\x1f", "\u2028\u2029",
		"ünïcödé 日本", string([]byte{0xff, 'a'}), 0.0, 1.0, -1.5, 1e21, 1e20, 1e-7, 123456789.125, -0.000001,
		math.MaxFloat64, true, false, []string{}, []string{"a", "b\""},
		map[string]any{"z": 1.0, "a": []any{"x", 2.0, nil, map[string]any{"k": true}}},
	}
	for _, v := range values {
		d := newDoc(1)
		d.Set("k", v)
		got := d.AppendJSON(nil)
		want, err := json.Marshal(map[string]any{"k": v})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%#v:\n got %s\nwant %s", v, got, want)
		}
	}
}

func FuzzDocString(f *testing.F) {
	for _, s := range []string{"", "a", "\"\\", "<>&", "\u2028", "\xff\xfe", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := newDoc(1)
		d.Set("k", s)
		got := d.AppendJSON(nil)
		want, _ := json.Marshal(map[string]any{"k": s})
		if string(got) != string(want) {
			t.Fatalf("%q:\n got %s\nwant %s", s, got, want)
		}
	})
}
