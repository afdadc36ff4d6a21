package filter

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata"
)

func authReq(fx *fixture, id string) *strata.RequestInfo {
	return &strata.RequestInfo{Auth: fx.records[id], Method: "GET", Context: strata.ContextDefault}
}

func TestCompilePosts(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	now := time.Date(2024, 1, 6, 12, 0, 0, 0, time.UTC)
	alice := authReq(fx, "u1")
	tests := []struct {
		filter string
		req    *strata.RequestInfo
		want   string
	}{
		{`@request.auth.id != ""`, nil, ""},
		{`@request.auth.id != ""`, alice, "p1 p2 p3"},
		{`author = @request.auth.id`, alice, "p1"},
		{`author = @request.auth.id`, nil, "p3"}, // NULL = "" alike
		{`status = "active" || status = "pending"`, nil, "p1 p2"},
		{`title ~ "world"`, nil, "p1"},
		{`title ~ "hel%"`, nil, "p1"},
		{`title ~ "abc_"`, nil, "p2"},
		{`title ~ "c_d"`, nil, "p2"},
		{`title ~ "x_d"`, nil, ""},
		{`title ~ "100%"`, nil, ""}, // raw pattern: must end with 100
		{`title ~ "%100\%"`, nil, "p2"},
		{`title !~ "world"`, nil, "p2 p3"},
		{`created >= "2024-01-01 00:00:00" && created < @todayStart`, nil, "p1"},
		{`created > @yearStart`, nil, "p1"},
		{`tags.id ?= "g2"`, nil, "p2"},
		{`tags.name = "go"`, nil, "p1"},
		{`tags.name ?= "go"`, nil, "p1 p2"},
		{`tags.name ?= "go" && tags.name ?= "rust"`, nil, ""}, // shared join: same tag
		{`tags.name ?= "go" && tags:length = 2`, nil, "p1 p2"},
		{`comments_via_post.approved ?= true`, nil, "p1 p2"},
		{`comments_via_post.approved = true`, nil, "p2"},
		{`comments_via_post.approved ?= false`, nil, "p1"},
		{`@request.body.role:isset = false`, nil, "p1 p2 p3"},
		{`@request.body.role:isset = false`, &strata.RequestInfo{Body: map[string]any{"role": "x"}}, ""},
		{`labels:length > 1 && labels:each ~ "x"`, nil, "p1"},
		{`labels:each ?= "b"`, nil, "p2"},
		{`labels ?= "b"`, nil, ""},
		{`labels ~ "b"`, nil, "p2"},
		{`labels:length = 0`, nil, "p3"},
		{`meta.level > 3 && location.lat > 40`, nil, "p1"},
		{`meta.a.1 = 2`, nil, "p1"},
		{`meta = null`, nil, "p3"},
		{`meta.level = null`, nil, "p3"},
		{`geoDistance(location.lon, location.lat, 23.32, 42.69) < 25`, nil, "p1"},
		{`strftime('%Y-%m', created) = "2024-01" // Jan`, nil, "p1"},
		{`strftime('%Y', created) = ""`, nil, "p3"},
		{`views > "7"`, nil, "p1"},
		{`views > 7`, nil, "p1"},
		{`views = 5`, nil, "p2"},
		{`views = 0`, nil, "p3"},
		{`views != 0`, nil, "p1 p2"},
		{`published = true`, nil, "p1"},
		{`published = false`, nil, "p2 p3"},
		{`title = ""`, nil, "p3"},
		{`title = null`, nil, "p3"},
		{`title != null`, nil, "p1 p2"},
		{`author.name = "Alice"`, nil, "p1"},
		{`author.name = ""`, nil, "p3"},
		{`author.team.name = "blue"`, nil, "p2"},
		{`author.team.owner.name:lower = "bob"`, nil, "p2"},
		{`author.id = "u1"`, nil, "p1"},
		{`author.roles ~ "admin"`, nil, "p1"},
		{`author.roles:each ?= "editor"`, nil, "p1 p2"},
		{`@collection.memberships.user ?= @request.auth.id && @collection.memberships.team ?= team`, alice, "p1"},
		{`@collection.memberships.user ?= @request.auth.id && @collection.memberships:x.team ?= team`, alice, "p1 p2"},
		{`@request.auth.team.name = "red"`, alice, "p1 p2 p3"},
		{`@request.auth.team.name = "red"`, nil, ""},
		{`@request.auth.roles:each ?= "admin"`, alice, "p1 p2 p3"},
		{`@request.auth.roles:length = 2 && views > 6`, alice, "p1"},
		{`@request.auth.roles ?= "editor"`, nil, ""},
		{`1 = 1`, nil, "p1 p2 p3"},
		{`NULL = ""`, nil, "p1 p2 p3"},
		{`TRUE = 1 && false = 0`, nil, "p1 p2 p3"},
		{`@request.body.title:changed = true`, &strata.RequestInfo{Body: map[string]any{"title": "Hello World"}}, "p2 p3"},
		{`@request.body.title:changed = false`, nil, "p1 p2 p3"},
		{`@request.body.tags.name ?= "rust"`, &strata.RequestInfo{Body: map[string]any{"tags": []any{"g2", "g1"}}}, "p1 p2 p3"},
		{`@request.body.author.name = "Bob"`, &strata.RequestInfo{Body: map[string]any{"author": "u2"}}, "p1 p2 p3"},
		{`@request.body.meta.x.0 = 7`, &strata.RequestInfo{Body: map[string]any{"meta": map[string]any{"x": []any{7.0}}}}, "p1 p2 p3"},
		{`@request.query.a = "1" && @request.headers.x_token = "t" && @request.method = "POST"`,
			&strata.RequestInfo{Method: "POST", Query: map[string]string{"a": "1"}, Headers: map[string]string{"x_token": "t"}}, "p1 p2 p3"},
		{`@request.context = "default"`, nil, "p1 p2 p3"},
		{`@request.nope = null`, nil, "p1 p2 p3"},
		{`@year = 2024 && @month = 1 && @day = 6 && @weekday = 6 && @hour = 12`, nil, "p1 p2 p3"},
		{`@now > created`, nil, "p1 p2 p3"}, // "" sorts first
		{`(views > 1 || title = "") && published = false`, nil, "p2 p3"},
		{`id ?= "p1"`, nil, "p1"},
		{`title ?!= "x"`, nil, "p1 p2 p3"},
		{`team = author.team`, nil, "p1 p2 p3"},
	}
	for _, tt := range tests {
		got, err := fx.query(t, fx.posts, tt.filter, Env{Request: tt.req, Now: now})
		if err != nil {
			t.Errorf("%s: %v", tt.filter, err)
			continue
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("%s: got %v, want %q", tt.filter, got, tt.want)
		}
	}
}

func TestCompileRestricted(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	tests := []struct {
		coll   *strata.Collection
		filter string
		want   string
		code   strata.ErrorCode
	}{
		{fx.posts, `@request.auth.id = ""`, "", strata.EForbidden},
		{fx.posts, `@collection.users.id ?= author`, "", strata.EForbidden},
		{fx.posts, `secret = "x"`, "", strata.EInvalid},
		{fx.posts, `nope = "x"`, "", strata.EInvalid},
		{fx.posts, `author.secret = "x"`, "", strata.EInvalid},
		{fx.users, `email ~ "@x.com"`, "u1 u3", ""},
		{fx.users, `email != "nobody"`, "u1 u3", ""},
		{fx.users, `email = "bob@y.com"`, "", ""},
		// comments' listRule hides c2, so post p1 now has only approved comments.
		{fx.posts, `comments_via_post.approved = true`, "p1 p2", ""},
		{fx.posts, `comments_via_post.body ?= "spam"`, "", ""},
		{fx.memberships, `user.name = "Bob"`, "m2", ""},
		{fx.users, `memberships_via_user.team ?= "t1"`, "", strata.EInvalid},
	}
	for _, tt := range tests {
		got, err := fx.query(t, tt.coll, tt.filter, Env{Restricted: true})
		if tt.code != "" {
			if strata.ErrorCodeOf(err) != tt.code {
				t.Errorf("%s: err %v, want code %s", tt.filter, err, tt.code)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.filter, err)
			continue
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("%s: got %v, want %q", tt.filter, got, tt.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	for _, src := range []string{
		`nope = 1`, `title:isset = 1`, `title:length = 1`, `title:each = 1`, `title:bogus = 1`,
		`views.x = 1`, `author.nope = 1`, `@bogus = 1`, `foo(1) = 1`, `geoDistance(1,2,3) = 1`,
		`strftime(title) = 1`, `strftime('%Y', created, views) = 1`, `@collection.nope.x = 1`,
		`@collection.users = 1`, `comments_via_post = 1`, `@request.body.nope:changed = true`,
		`geoDistance(tags.name, 1, 2, 3) = 1`,
	} {
		_, err := fx.query(t, fx.posts, src, Env{})
		if strata.ErrorCodeOf(err) != strata.EInvalid {
			t.Errorf("%s: err %v, want EInvalid", src, err)
		}
		var se *strata.Error
		if err != nil && !errors.As(err, &se) {
			t.Errorf("%s: not a *strata.Error", src)
		}
	}
	if err := Validate("author = @request.auth.id && tags.name ?= 'x'", fx.posts, fx.schema); err != nil {
		t.Error(err)
	}
	if err := Validate("nope = 1", fx.posts, fx.schema); err == nil {
		t.Error("Validate accepted an unknown field")
	}
}

func TestNeedsStoreAndEval(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	alice := authReq(fx, "u1")
	for src, want := range map[string]bool{
		`title = "x" && author.id = @request.auth.id`:   false,
		`labels:each ?= "x" && meta.level > 1`:          false,
		`author.name = "x"`:                             true,
		`comments_via_post.approved ?= true`:            true,
		`@collection.memberships.user ?= "u1"`:          true,
		`@request.auth.team.name = "red"`:               true,
		`strftime('%Y', created, 'start of year') = ""`: true,
	} {
		e, err := Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		env := &Env{Collection: fx.posts, Schema: fx.schema, Request: alice}
		if got := NeedsStore(e, env); got != want {
			t.Errorf("NeedsStore(%s) = %v, want %v", src, got, want)
		}
		_, err = Eval(e, env, fx.records["p1"])
		if want != errors.Is(err, ErrNeedsStore) {
			t.Errorf("Eval(%s): %v", src, err)
		}
	}
}
