package filter

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct{ src, want string }{
		{`a = 1`, `a = 1`},
		{`a=1&&b!=2||c>3`, `((a = 1 && b != 2) || c > 3)`},
		{`a = 1 || b = 2 && c = 3`, `(a = 1 || (b = 2 && c = 3))`},
		{`(a = 1 || b = 2) && c ?~ 'x'`, `((a = 1 || b = 2) && c ?~ "x")`},
		{`1 = 1`, `1 = 1`},
		{`-1.5 <= x`, `-1.5 <= x`},
		{"a = 'it\\'s' // comment\n && b ?!= \"q\\\"\"", `(a = "it's" && b ?!= "q\"")`},
		{`a = "\n\t\\\x"`, `a = "\n\t\\\\x"`},
		{`geoDistance(a.lon, a.lat, 1, 2,) < 25`, `geoDistance(a.lon, a.lat, 1, 2) < 25`},
		{`strftime('%Y', created) = "2024"`, `strftime("%Y", created) = "2024"`},
		{`@request.body.x:isset = false`, `@request.body.x:isset = false`},
		{`@collection.m:alias.user ?= @request.auth.id`, `@collection.m:alias.user ?= @request.auth.id`},
		{`#x = _y`, `#x = _y`},
	}
	for _, tt := range tests {
		e, err := Parse(tt.src)
		if err != nil {
			t.Errorf("%s: %v", tt.src, err)
			continue
		}
		if got := String(e); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.src, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src string
		pos int
	}{
		{``, 0},
		{`   `, 3},
		{`a`, 1},
		{`a =`, 3},
		{`a = 1 &&`, 8},
		{`a = 1 & b = 2`, 6},
		{`()`, 1},
		{`(a = 1`, 6},
		{`a = 1)`, 5},
		{`a = "x`, 4},
		{`a. = 1`, 1},
		{`a: = 1`, 1},
		{`@ = 1`, 0},
		{`_ = 1`, 0},
		{`a = 1.`, 4},
		{`a = .5`, 4},
		{`a = -`, 4},
		{`a = 1e5`, 4},
		{`a == 1`, 3},
		{`a ! 1`, 2},
		{`a = {:x}`, 4},
		{`f(g(h(i(1)))) = 1`, 6},
		{`f(1 2) = 1`, 4},
		{`a = 1 b = 2`, 6},
		{`a = é`, 4},
	}
	for _, tt := range tests {
		_, err := Parse(tt.src)
		var se *SyntaxError
		if strata.ErrorCodeOf(err) != strata.EInvalid || !errors.As(err, &se) {
			t.Errorf("%q: err %v, want EInvalid syntax error", tt.src, err)
			continue
		}
		if se.Pos != tt.pos {
			t.Errorf("%q: position %d, want %d (%v)", tt.src, se.Pos, tt.pos, err)
		}
		if !strings.Contains(err.Error(), "position") {
			t.Errorf("%q: message %q lacks the position", tt.src, err)
		}
	}
}

func TestParseLimits(t *testing.T) {
	t.Parallel()
	many := strings.Repeat("a = 1 && ", MaxComparisons) + "a = 1"
	if _, err := Parse(many); err == nil && len(many) <= MaxLength {
		t.Error("accepted more than 200 comparisons")
	}
	ok := strings.TrimSuffix(strings.Repeat("a=1&&", MaxComparisons), "&&")
	if _, err := Parse(ok); err != nil {
		t.Errorf("200 comparisons: %v", err)
	}
	if _, err := Parse(`a = "` + strings.Repeat("x", MaxLength) + `"`); strata.ErrorCodeOf(err) != strata.EInvalid {
		t.Error("accepted an over-long filter")
	}
	if _, err := Parse(`f(g(h(1))) = 1`); err != nil {
		t.Errorf("nesting 3: %v", err)
	}
}

func TestParseCached(t *testing.T) {
	t.Parallel()
	a, err := ParseCached(`title = "cached"`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ParseCached(`title = "cached"`)
	if a != b {
		t.Error("second parse not served from the cache")
	}
	if _, err := ParseCached(`title =`); err == nil {
		t.Error("cached parse accepted a syntax error")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`a = 1`, `(a ?= "x" || b.c:lower ~ 'y') && d != null`, `geoDistance(a,b,1,2) < 3 // c`, `"\'" = '\"'`, `-1.5 >= @now`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			var se *strata.Error
			if !errors.As(err, &se) || se.Code != strata.EInvalid {
				t.Fatalf("%q: %v is not an EInvalid *strata.Error", src, err)
			}
			return
		}
		if e == nil {
			t.Fatalf("%q: nil expression without error", src)
		}
		_ = String(e)
	})
}

// FuzzCompile parses, compiles and runs filters against a small table. Any
// error must be a *strata.Error from Parse/Compile; the SQL must always run.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{`title ~ "a" && views > 1`, `labels:each ?= "x"`, `meta.a.0 = 1 || owner.id = id`,
		`@request.body.list:each ?> 1`, `strftime('%Y', created, 'start of month') = "2024"`, `geoDistance(views, 1, 2, 3) < 1`,
		`owner.owner.title ?= "x"`, `items_via_owner.views ?> 1`, `@collection.items:z.title ?= title`} {
		f.Add(s)
	}
	coll := diffCollection()
	schema := newSchema(coll)
	db := openDB(f)
	createTable(f, db, coll)
	r := newRand()
	for i := 0; i < 5; i++ {
		insertRecord(f, db, rec(coll, randData(r, i)))
	}
	req := &strata.RequestInfo{Body: map[string]any{"list": []any{1.0, "a"}, "owner": "r01"}}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			return
		}
		env := &Env{Collection: coll, Schema: schema, Request: req}
		args := &Args{}
		where, err := Compile(e, env, args)
		if err != nil {
			var se *strata.Error
			if !errors.As(err, &se) {
				t.Fatalf("%q: %v is not a *strata.Error", src, err)
			}
			return
		}
		// Chains of multi-valued hops on both sides of a comparison can
		// multiply rows (as PocketBase's joins do); callers bound queries
		// with a deadline, and so does this test.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		q, vals := args.Bind("SELECT id FROM items WHERE " + where)
		rows, err := db.QueryContext(ctx, q, vals...)
		if err != nil && ctx.Err() == nil {
			t.Fatalf("%q\n%s: %v", src, where, err)
		}
		if err != nil {
			return
		}
		defer rows.Close()
		for rows.Next() {
		}
		if err := rows.Err(); err != nil && ctx.Err() == nil {
			t.Fatalf("%q\n%s: %v", src, where, err)
		}
		for _, rc := range []*strata.Record{strata.NewRecord(coll)} {
			if _, err := Eval(e, env, rc); err != nil && !errors.Is(err, ErrNeedsStore) {
				var se *strata.Error
				if !errors.As(err, &se) {
					t.Fatalf("%q: Eval: %v", src, err)
				}
			}
		}
	})
}
