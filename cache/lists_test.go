package cache_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/cache"
)

type schema map[string]*strata.Collection

func (s schema) Collection(idOrName string) *strata.Collection {
	if c, ok := s[idOrName]; ok {
		return c
	}
	for _, c := range s {
		if strings.EqualFold(c.Name, idOrName) {
			return c
		}
	}
	return nil
}

func ptr(s string) *string { return &s }

// fixture: users (auth), authors, posts (author → authors, owner → users,
// data json), a view, and a _superusers collection.
func fixture() schema {
	users := &strata.Collection{ID: "u1", Name: "users", Type: strata.CollectionAuth,
		Fields:   []*strata.Field{{Name: "id", Type: "text"}, {Name: "email", Type: "email"}, {Name: "role", Type: "text"}, {Name: "team", Type: strata.FieldRelation, CollectionID: "t1"}},
		ListRule: ptr("id = @request.auth.id"), ViewRule: ptr("id = @request.auth.id"),
		Auth: &strata.AuthOptions{ManageRule: ptr(`@request.auth.role = "admin"`)}}
	teams := &strata.Collection{ID: "t1", Name: "teams", Type: strata.CollectionBase,
		Fields: []*strata.Field{{Name: "id", Type: "text"}, {Name: "name", Type: "text"}}, ListRule: ptr(""), ViewRule: ptr("")}
	authors := &strata.Collection{ID: "a1", Name: "authors", Type: strata.CollectionBase,
		Fields: []*strata.Field{{Name: "id", Type: "text"}, {Name: "name", Type: "text"}}, ListRule: ptr(""), ViewRule: ptr("")}
	posts := &strata.Collection{ID: "p1", Name: "posts", Type: strata.CollectionBase,
		Fields: []*strata.Field{{Name: "id", Type: "text"}, {Name: "title", Type: "text"}, {Name: "created", Type: "autodate"},
			{Name: "author", Type: strata.FieldRelation, CollectionID: "a1"}, {Name: "owner", Type: strata.FieldRelation, CollectionID: "u1"},
			{Name: "data", Type: "json"}},
		ListRule: ptr(""), ViewRule: ptr("")}
	comments := &strata.Collection{ID: "c1", Name: "comments", Type: strata.CollectionBase,
		Fields:   []*strata.Field{{Name: "id", Type: "text"}, {Name: "post", Type: strata.FieldRelation, CollectionID: "p1"}},
		ListRule: ptr(""), ViewRule: ptr("")}
	view := &strata.Collection{ID: "v1", Name: "stats", Type: strata.CollectionView,
		Fields: []*strata.Field{{Name: "id", Type: "text"}}, ListRule: ptr("")}
	su := &strata.Collection{ID: strata.SuperusersID, Name: strata.SuperusersName, Type: strata.CollectionAuth,
		Fields: []*strata.Field{{Name: "id", Type: "text"}}}
	return schema{"u1": users, "t1": teams, "a1": authors, "p1": posts, "c1": comments, "v1": view, su.ID: su}
}

func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis at 127.0.0.1:6379 is required (make test starts it): %v", err)
	}
	return c
}

func newLists(t *testing.T, c redis.UniversalClient) (*cache.Lists, string) {
	prefix := "strata:test:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	return cache.NewLists(c, cache.ListOptions{Prefix: prefix, Timeout: 5 * time.Second, MaxEntryBytes: 100}), prefix
}

func auth(s schema, coll, id, role string) *strata.RequestInfo {
	r := strata.NewRecord(s.Collection(coll))
	r.Data["id"], r.Data["role"] = id, role
	return &strata.RequestInfo{Method: "GET", Context: strata.ContextDefault, Auth: r}
}

func query(s schema, coll string, req *strata.RequestInfo, raw string) cache.ListQuery {
	v, _ := url.ParseQuery(raw)
	return cache.ListQuery{Schema: s, Collection: s.Collection(coll), Request: req, Method: "GET", Query: v}
}

func TestListsCacheability(t *testing.T) {
	s := fixture()
	l, _ := newLists(t, redisClient(t))
	guest := &strata.RequestInfo{Method: "GET"}
	for _, tc := range []struct {
		name, coll, raw, rule string
		want                  bool
	}{
		{"public list", "posts", "", "", true},
		{"own fields, json path, modifiers", "posts", "filter=" + url.QueryEscape(`title:lower ~ "a" && data.x.y = 1 && created != ""`), "", true},
		{"relation id", "posts", "filter=" + url.QueryEscape(`author = "x"`), "", true},
		{"owner rule", "posts", "", "owner = @request.auth.id && @request.auth.role = 'x'", true},
		{"query and context", "posts", "", "@request.query.x = '1' && @request.context = 'default' && @request.method = 'GET'", true},
		{"sort own fields", "posts", "sort=-created,title,@rowid", "", true},
		{"expand relation", "posts", "expand=author,owner", "", true},
		{"expand back-relation", "posts", "expand=comments_via_post.post", "", true},
		{"expand unknown is ignored", "posts", "expand=nope.x", "", true},
		{"geoDistance and strftime on fields", "posts", "filter=" + url.QueryEscape(`strftime('%Y', created) = '2024'`), "", true},

		{"filter through relation", "posts", "filter=" + url.QueryEscape(`author.name = "x"`), "", false},
		{"rule through relation", "posts", "", "owner.role = 'x'", false},
		{"auth path through relation", "posts", "", "@request.auth.team.name = 'x'", false},
		{"back-relation in filter", "posts", "filter=" + url.QueryEscape(`comments_via_post.id != ""`), "", false},
		{"@collection", "posts", "", "@collection.authors.name = 'x'", false},
		{"headers", "posts", "", "@request.headers.x_key = 'k'", false},
		{"clock macro", "posts", "filter=" + url.QueryEscape(`created < @now`), "", false},
		{"strftime now", "posts", "filter=" + url.QueryEscape(`strftime('%Y', 'now') = '2024'`), "", false},
		{"random sort", "posts", "sort=@random", "", false},
		{"sort through relation", "posts", "sort=author.name", "", false},
		{"view collection", "stats", "", "", false},
		{"expanded users' rule reads the auth record only", "posts", "expand=owner", "", true},
		{"expanded rule through relation", "posts", "expand=owner.team", "", true},
		{"syntax error", "posts", "filter=" + url.QueryEscape(`title = `), "", false},
		{"superusers-only list", "posts", "", "-", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *s.Collection(tc.coll)
			switch tc.rule {
			case "":
			case "-":
				c.ListRule = nil
			default:
				c.ListRule = ptr(tc.rule)
			}
			q := query(s, tc.coll, guest, tc.raw)
			q.Collection = &c
			body, fill := l.Lookup(context.Background(), q)
			if body != nil {
				t.Fatal("hit on an empty cache")
			}
			if got := fill != nil; got != tc.want {
				t.Fatalf("cacheable = %v, want %v", got, tc.want)
			}
		})
	}

	// An expanded collection whose viewRule walks a relation is out.
	teams := *s["t1"]
	teams.ViewRule = ptr("@collection.posts.id != ''")
	s2 := fixture()
	s2["t1"] = &teams
	if _, fill := l.Lookup(context.Background(), query(s2, "users", auth(s2, "u1", "x", ""), "expand=team")); fill != nil {
		t.Fatal("expand into a collection whose viewRule reads @collection was cacheable")
	}
}

// store runs a miss and stores body.
func store(t *testing.T, l *cache.Lists, q cache.ListQuery, body string) {
	t.Helper()
	got, fill := l.Lookup(context.Background(), q)
	if got != nil || fill == nil {
		t.Fatalf("want a miss, got body %q fill %v", got, fill)
	}
	fill.Store(context.Background(), []byte(body))
}

func hit(t *testing.T, l *cache.Lists, q cache.ListQuery) string {
	t.Helper()
	body, _ := l.Lookup(context.Background(), q)
	return string(body)
}

func TestListsKeySeparatesCallers(t *testing.T) {
	s := fixture()
	l, _ := newLists(t, redisClient(t))
	alice, bob := auth(s, "u1", "alice", ""), auth(s, "u1", "bob", "")
	root := auth(s, strata.SuperusersID, "root", "")
	root2 := auth(s, strata.SuperusersID, "root2", "")
	guest := &strata.RequestInfo{Method: "GET"}

	// No rule reads the caller: one page for every non-superuser.
	store(t, l, query(s, "posts", alice, ""), "public")
	for _, req := range []*strata.RequestInfo{bob, guest} {
		if got := hit(t, l, query(s, "posts", req, "")); got != "public" {
			t.Fatalf("public page: got %q", got)
		}
	}
	// Superusers share among themselves only.
	if got := hit(t, l, query(s, "posts", root, "")); got != "" {
		t.Fatalf("a superuser got a user's page %q", got)
	}
	store(t, l, query(s, "posts", root, ""), "su")
	if got := hit(t, l, query(s, "posts", root2, "")); got != "su" {
		t.Fatalf("superusers do not share: %q", got)
	}

	// An owner rule: one page per user; a changed auth record is a new key.
	c := *s["p1"]
	c.ListRule = ptr("owner = @request.auth.id")
	s["p1"] = &c
	store(t, l, query(s, "posts", alice, ""), "alice")
	if got := hit(t, l, query(s, "posts", bob, "")); got != "" {
		t.Fatalf("bob got %q", got)
	}
	if got := hit(t, l, query(s, "posts", guest, "")); got != "" {
		t.Fatalf("a guest got %q", got)
	}
	if got := hit(t, l, query(s, "posts", alice, "")); got != "alice" {
		t.Fatalf("alice: %q", got)
	}
	if got := hit(t, l, query(s, "posts", auth(s, "u1", "alice", "admin"), "")); got != "" {
		t.Fatalf("alice with another role got %q", got)
	}
	// Any other query parameter is a different page.
	if got := hit(t, l, query(s, "posts", alice, "fields=id")); got != "" {
		t.Fatalf("fields ignored: %q", got)
	}
	// An auth collection involves emails: per caller even without auth in
	// the rule.
	u := *s["u1"]
	u.ListRule, u.Auth = ptr(""), nil
	s["u1"] = &u
	store(t, l, query(s, "users", alice, ""), "users-alice")
	if got := hit(t, l, query(s, "users", bob, "")); got != "" {
		t.Fatalf("bob got alice's users page %q", got)
	}
}

func TestListsGenerations(t *testing.T) {
	s := fixture()
	rc := redisClient(t)
	l, prefix := newLists(t, rc)
	ctx := context.Background()
	guest := &strata.RequestInfo{Method: "GET"}
	q := query(s, "posts", guest, "expand=author")

	store(t, l, q, "v1")
	if hit(t, l, q) != "v1" {
		t.Fatal("no hit after store")
	}
	// A write to the expanded collection invalidates.
	l.Invalidate([]strata.Change{{CollectionID: "a1", RecordID: "x"}})
	store(t, l, q, "v2")
	// Writes to unrelated collections do not.
	l.Invalidate([]strata.Change{{CollectionID: "t1", RecordID: "x"}})
	if hit(t, l, q) != "v2" {
		t.Fatal("an unrelated write invalidated the page")
	}
	// An evicted generation restarts at a random value, never at one an
	// old page was stored under.
	if err := rc.Del(ctx, prefix+"gen:p1").Err(); err != nil {
		t.Fatal(err)
	}
	if got := hit(t, l, q); got != "" {
		t.Fatalf("page served after its generation was evicted: %q", got)
	}
	l.Invalidate([]strata.Change{{CollectionID: "p1"}})
	if got := hit(t, l, q); got != "" {
		t.Fatalf("page served after eviction and a bump: %q", got)
	}
	// Pages over the cap are not stored.
	store(t, l, q, strings.Repeat("x", 101))
	if got := hit(t, l, q); got != "" {
		t.Fatal("an oversized page was stored")
	}
	if st := l.Stats(); st.Errors != 0 || st.Hits != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// switchConn fails every write while down is set: Redis unreachable.
type switchConn struct {
	net.Conn
	down *atomic.Bool
}

func (c switchConn) Write(b []byte) (int, error) {
	if c.down.Load() {
		return 0, errors.New("unreachable")
	}
	return c.Conn.Write(b)
}

// A bump that cannot reach Redis leaves this node off the cache until it
// lands: the node must not serve a page older than its own write.
func TestListsFailedBumpBypassesUntilFlushed(t *testing.T) {
	rc := redisClient(t)
	var down atomic.Bool
	client := redis.NewClient(&redis.Options{MaxRetries: -1, Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
		if down.Load() {
			return nil, errors.New("unreachable")
		}
		c, err := (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:6379")
		return switchConn{c, &down}, err
	}})
	t.Cleanup(func() { client.Close() })
	prefix := "strata:test:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	l := cache.NewLists(client, cache.ListOptions{Prefix: prefix, Timeout: 5 * time.Second, Cooldown: time.Nanosecond})
	ctx := context.Background()
	q := query(fixture(), "posts", &strata.RequestInfo{Method: "GET"}, "")

	store(t, l, q, "old")
	gen := rc.Get(ctx, prefix+"gen:p1").Val()
	down.Store(true)
	l.Invalidate([]strata.Change{{CollectionID: "p1"}})
	if got := rc.Get(ctx, prefix+"gen:p1").Val(); got != gen {
		t.Fatal("the generation moved while Redis was unreachable")
	}
	if body, fill := l.Lookup(ctx, q); body != nil || fill != nil {
		t.Fatal("lookup answered with Redis unreachable")
	}
	down.Store(false)
	// Back: the pending bump lands first, so the page stored before the
	// write is not served.
	if body, fill := l.Lookup(ctx, q); body != nil || fill == nil {
		t.Fatalf("after recovery: body %q fill %v, want a miss", body, fill)
	}
	if got := rc.Get(ctx, prefix+"gen:p1").Val(); got == gen {
		t.Fatal("the pending bump never landed")
	}
	if st := l.Stats(); st.Errors != 2 || st.Hits != 0 {
		t.Fatalf("stats %+v, want 2 errors and no hit", st)
	}
}
