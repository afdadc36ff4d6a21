package filter

import (
	"strings"
	"testing"

	"github.com/strata-run/strata"
)

func TestCompileSort(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	tests := []struct {
		spec string
		want string
		code strata.ErrorCode
	}{
		{"views", "p3 p2 p1", ""},
		{"-views", "p1 p2 p3", ""},
		{"+title", "p3 p1 p2", ""}, // binary collation: "H" < "a"
		{"-published,title", "p1 p3 p2", ""},
		{"author.name", "p3 p1 p2", ""},
		{"-author.team.name", "p1 p2 p3", ""},
		{"-meta.level", "p1 p2 p3", ""},
		{"location.lat", "p2 p3 p1", ""},
		{"title:lower,id", "p3 p2 p1", ""},
		{"@rowid", "p1 p2 p3", ""},
		{"-@rowid", "p3 p2 p1", ""},
		{"@random, id", "", ""},
		{"nope", "", strata.EInvalid},
		{"tags.name", "", strata.EInvalid},
		{"secret", "", strata.EInvalid},
		{"title)", "", strata.EInvalid},
		{"@request.auth.id", "", strata.EForbidden},
		{"a,b,c,d,e,f,g,h,i", "", strata.EInvalid},
		{strings.Repeat("x", 256), "", strata.EInvalid},
	}
	for _, tt := range tests {
		args := &Args{}
		order, err := CompileSort(tt.spec, &Env{Collection: fx.posts, Schema: fx.schema, Restricted: true}, args)
		if tt.code != "" {
			if strata.ErrorCodeOf(err) != tt.code {
				t.Errorf("%s: err %v, want %s", tt.spec, err, tt.code)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.spec, err)
			continue
		}
		q, vals := args.Bind("SELECT id FROM `posts` ORDER BY " + order)
		rows, err := fx.db.Query(q, vals...)
		if err != nil {
			t.Fatalf("%s: %s: %v", tt.spec, order, err)
		}
		var ids []string
		for rows.Next() {
			var id string
			rows.Scan(&id)
			ids = append(ids, id)
		}
		rows.Close()
		if tt.want != "" && strings.Join(ids, " ") != tt.want {
			t.Errorf("%s: got %v, want %s (%s)", tt.spec, ids, tt.want, order)
		}
	}
	// One Args shared by a filter and a sort numbers placeholders across both.
	args := &Args{}
	env := &Env{Collection: fx.posts, Schema: fx.schema, Request: &strata.RequestInfo{Body: map[string]any{"k": "ab"}}}
	e, _ := Parse(`title ~ @request.body.k`)
	where, err := Compile(e, env, args)
	if err != nil {
		t.Fatal(err)
	}
	order, err := CompileSort("-meta.level", env, args)
	if err != nil {
		t.Fatal(err)
	}
	var id string
	q, vals := args.Bind("SELECT id FROM posts WHERE " + where + " ORDER BY " + order)
	if err := fx.db.QueryRow(q, vals...).Scan(&id); err != nil || id != "p2" {
		t.Errorf("shared args: %q %v", id, err)
	}
}
