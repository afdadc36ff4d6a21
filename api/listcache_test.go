package api_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-run/strata/api"
	"github.com/strata-run/strata/cache"
)

// redisForLists connects to the Redis CI provides; its absence fails.
func redisForLists(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	tb.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		tb.Fatalf("Redis at 127.0.0.1:6379 is required (make test starts it): %v", err)
	}
	return c
}

// listPrefix is a key prefix of one test, so tests never share pages.
func listPrefix() string {
	return "strata:test:lists:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
}

// withLists chains a list cache on client to ts's record cache. The
// timeout is generous: these tests check behaviour, not latency, on a
// loaded machine.
func withLists(tb testing.TB, ts *testServer, client redis.UniversalClient, prefix string) *cache.Lists {
	tb.Helper()
	rc, ok := ts.app.RecordCache().(*cache.Records)
	if !ok {
		tb.Fatal("test server has no record cache")
	}
	l := cache.NewLists(client, cache.ListOptions{Prefix: prefix, Timeout: 5 * time.Second})
	rc.SetLists(l)
	return l
}

// secondNode is another App and Server on the database at dbPath, with its own
// record cache: a second node of the same deployment. Collections must
// exist before it starts: it does not run FollowChanges, so it loads the
// schema once.
func secondNode(tb testing.TB, dbPath string) *testServer {
	tb.Helper()
	return nodeOn(tb, openSQLite(tb, dbPath), false, api.Options{})
}

// newFileTestServer is newTestServer on a database file whose path is
// returned, so that a second node can open it.
func newFileTestServer(tb testing.TB) (*testServer, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "data.db")
	return nodeOn(tb, openSQLite(tb, path), true, api.Options{}), path
}

func wantStats(t *testing.T, l *cache.Lists, want cache.ListStats) {
	t.Helper()
	if got := l.Stats(); got != want {
		t.Fatalf("list cache stats %+v, want %+v", got, want)
	}
}

func TestListCacheHitAfterMissAndETag(t *testing.T) {
	ts := newTestServer(t)
	postsFixture(ts)
	l := withLists(t, ts, redisForLists(t), listPrefix())
	const list = "/api/collections/posts/records?sort=title"

	first := ts.do("GET", list, "", nil).status(200).expect("totalItems", 1)
	wantStats(t, l, cache.ListStats{Misses: 1, Stores: 1})
	second := ts.do("GET", list, "", nil).status(200)
	wantStats(t, l, cache.ListStats{Misses: 1, Stores: 1, Hits: 1})
	if string(first.body) != string(second.body) || first.hdr.Get("ETag") == "" || first.hdr.Get("ETag") != second.hdr.Get("ETag") {
		t.Fatalf("hit differs from miss:\n%s %s\n%s %s", first.hdr.Get("ETag"), first.body, second.hdr.Get("ETag"), second.body)
	}

	// Revalidation still works on hits and on misses.
	req, _ := http.NewRequest("GET", ts.srv.URL+list, nil)
	req.Header.Set("If-None-Match", first.hdr.Get("ETag"))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match on a hit: %d, want 304", res.StatusCode)
	}
	req, _ = http.NewRequest("GET", ts.srv.URL+list+"&perPage=5", nil)
	req.Header.Set("If-None-Match", `"nope"`)
	if res, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("If-None-Match mismatch on a miss: %d, want 200", res.StatusCode)
	}
	wantStats(t, l, cache.ListStats{Misses: 2, Stores: 2, Hits: 2})

	// Errors are never stored.
	ts.do("GET", "/api/collections/posts/records?filter=nope%3D1", "", nil).status(400)
	ts.do("GET", "/api/collections/posts/records?filter=nope%3D1", "", nil).status(400)
	if got := l.Stats().Stores; got != 2 {
		t.Fatalf("stores = %d after failing lists, want 2", got)
	}
}

func TestListCacheWritesInvalidateOnEveryNode(t *testing.T) {
	a, path := newFileTestServer(t)
	a.collection(`{"name":"posts","listRule":"","viewRule":"","createRule":"","updateRule":"","deleteRule":"",
		"fields":[{"name":"title","type":"text"}]}`)
	id := a.record("posts", map[string]any{"title": "one"})
	b := secondNode(t, path)
	client, prefix := redisForLists(t), listPrefix()
	la, lb := withLists(t, a, client, prefix), withLists(t, b, client, prefix)
	const list = "/api/collections/posts/records?sort=title"

	// Both nodes share one page.
	a.do("GET", list, "", nil).status(200).expect("totalItems", 1)
	b.do("GET", list, "", nil).status(200).expect("totalItems", 1)
	wantStats(t, la, cache.ListStats{Misses: 1, Stores: 1})
	wantStats(t, lb, cache.ListStats{Hits: 1})

	// Each write shows in the very next list on the other node.
	a.do("POST", "/api/collections/posts/records", "", map[string]any{"title": "two"}).status(200)
	b.do("GET", list, "", nil).status(200).expect("totalItems", 2).expect("items.1.title", "two")
	b.do("GET", list, "", nil).status(200).expect("totalItems", 2)
	a.do("PATCH", "/api/collections/posts/records/"+id, "", map[string]any{"title": "one!"}).status(200)
	b.do("GET", list, "", nil).status(200).expect("items.0.title", "one!")
	b.do("DELETE", "/api/collections/posts/records/"+id, "", nil).status(204)
	a.do("GET", list, "", nil).status(200).expect("totalItems", 1).expect("items.0.title", "two")
	a.do("GET", list, "", nil).status(200).expect("totalItems", 1)
	// And in a batch, through the same write path.
	b.do("GET", list, "", nil).status(200).expect("totalItems", 1)
	a.su("PATCH", "/api/settings", map[string]any{"batch": map[string]any{"enabled": true, "maxRequests": 10}}).status(200)
	a.su("POST", "/api/batch", map[string]any{"requests": []any{map[string]any{
		"method": "POST", "url": "/api/collections/posts/records", "body": map[string]any{"title": "three"}}}}).status(200)
	b.do("GET", list, "", nil).status(200).expect("totalItems", 2)

	if s := lb.Stats(); s.Hits < 2 || s.Errors != 0 {
		t.Fatalf("node b: %+v, want hits between writes and no errors", s)
	}
	if s := la.Stats(); s.Hits < 1 || s.Errors != 0 {
		t.Fatalf("node a: %+v, want a hit and no errors", s)
	}
}

func TestListCacheNeverSharesPagesAcrossRights(t *testing.T) {
	ts := newTestServer(t)
	ts.collection(`{"name":"notes","listRule":"owner = @request.auth.id","viewRule":"owner = @request.auth.id",
		"fields":[{"name":"owner","type":"relation","collectionId":"users","maxSelect":1},{"name":"title","type":"text"},
		{"name":"secret","type":"text","hidden":true}]}`)
	ts.collection(`{"name":"pub","listRule":"","fields":[{"name":"title","type":"text"},{"name":"secret","type":"text","hidden":true}]}`)
	alice, aliceTok := ts.user("alice@strata.test")
	bob, bobTok := ts.user("bob@strata.test")
	ts.record("notes", map[string]any{"owner": alice, "title": "alice's", "secret": "s1"})
	ts.record("notes", map[string]any{"owner": bob, "title": "bob's", "secret": "s2"})
	ts.record("pub", map[string]any{"title": "hello", "secret": "s3"})
	l := withLists(t, ts, redisForLists(t), listPrefix())
	const notes = "/api/collections/notes/records"

	for range 2 {
		ts.do("GET", notes, aliceTok, nil).status(200).expect("totalItems", 1).expect("items.0.title", "alice's")
		ts.do("GET", notes, bobTok, nil).status(200).expect("totalItems", 1).expect("items.0.title", "bob's")
		ts.do("GET", notes, "", nil).status(200).expect("totalItems", 0)
		ts.su("GET", notes, nil).status(200).expect("totalItems", 2).expect("items.0.secret", "s1")
	}
	wantStats(t, l, cache.ListStats{Misses: 4, Stores: 4, Hits: 4})

	// A public list without auth in its rule is one page for every
	// non-superuser, and another for superusers, who see hidden fields.
	const pub = "/api/collections/pub/records"
	ts.su("GET", pub, nil).status(200).expect("items.0.secret", "s3")
	for _, tok := range []string{aliceTok, bobTok, ""} {
		res := ts.do("GET", pub, tok, nil).status(200).expect("items.0.title", "hello")
		if strings.Contains(string(res.body), "s3") {
			t.Fatalf("a non-superuser got the superuser's page: %s", res.body)
		}
	}
	wantStats(t, l, cache.ListStats{Misses: 6, Stores: 6, Hits: 6})

	// A rule change is a new key: the old page is never served under it.
	ts.su("PATCH", "/api/collections/notes", map[string]any{"listRule": `owner = @request.auth.id && title = "none"`}).status(200)
	ts.do("GET", notes, aliceTok, nil).status(200).expect("totalItems", 0)
}

func TestListCacheExpandFollowsTheExpandedCollection(t *testing.T) {
	ts := newTestServer(t)
	ts.collection(`{"name":"authors","listRule":"","viewRule":"","updateRule":"","fields":[{"name":"name","type":"text"}]}`)
	ts.collection(`{"name":"books","listRule":"","viewRule":"",
		"fields":[{"name":"title","type":"text"},{"name":"author","type":"relation","collectionId":"authors","maxSelect":1}]}`)
	who := ts.record("authors", map[string]any{"name": "Ann"})
	ts.record("books", map[string]any{"title": "B1", "author": who})
	l := withLists(t, ts, redisForLists(t), listPrefix())
	const list = "/api/collections/books/records?expand=author"

	ts.do("GET", list, "", nil).status(200).expect("items.0.expand.author.name", "Ann")
	ts.do("GET", list, "", nil).status(200).expect("items.0.expand.author.name", "Ann")
	wantStats(t, l, cache.ListStats{Misses: 1, Stores: 1, Hits: 1})
	ts.do("PATCH", "/api/collections/authors/records/"+who, "", map[string]any{"name": "Bea"}).status(200)
	ts.do("GET", list, "", nil).status(200).expect("items.0.expand.author.name", "Bea")

	// A filter through the relation reads rows outside the key: not cached.
	before := l.Stats()
	ts.do("GET", "/api/collections/books/records?filter="+urlQuery(`author.name="Bea"`), "", nil).status(200).expect("totalItems", 1)
	if l.Stats() != before {
		t.Fatalf("a filter through a relation was cached: %+v → %+v", before, l.Stats())
	}
}

func TestListCacheRedisDownServesFromTheStore(t *testing.T) {
	redisForLists(t)
	proxy := newTCPProxy(t, "127.0.0.1:6379")
	client := redis.NewClient(&redis.Options{Addr: proxy.ln.Addr().String(), MaxRetries: -1,
		DialTimeout: 50 * time.Millisecond, ReadTimeout: 50 * time.Millisecond, WriteTimeout: 50 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	ts := newTestServer(t)
	postsFixture(ts)
	rc := ts.app.RecordCache().(*cache.Records)
	l := cache.NewLists(client, cache.ListOptions{Prefix: listPrefix(), Timeout: 5 * time.Second, Cooldown: time.Hour})
	rc.SetLists(l)
	const list = "/api/collections/posts/records"

	ts.do("GET", list, "", nil).status(200)
	ts.do("GET", list, "", nil).status(200)
	wantStats(t, l, cache.ListStats{Misses: 1, Stores: 1, Hits: 1})

	proxy.close()
	ts.do("GET", list, "", nil).status(200).expect("totalItems", 1)
	if l.Stats().Errors == 0 {
		t.Fatal("no error counted with Redis gone")
	}
	// The node keeps answering from the store, writes included.
	ts.do("POST", list, "", map[string]any{"title": "more"}).status(200)
	for range 3 {
		ts.do("GET", list, "", nil).status(200).expect("totalItems", 2)
	}
	if s := l.Stats(); s.Hits != 1 {
		t.Fatalf("hits with Redis down: %+v", s)
	}
}

// BenchmarkListCache compares the list of BenchmarkRecordListTotal served
// from the store with the same list served from the Redis list cache (one
// Redis round trip per request, including the generation check).
func BenchmarkListCache(b *testing.B) {
	ts, _ := benchFixture(b, 10000)
	h := ts.srv.Config.Handler
	target := "/api/collections/posts/records?perPage=20&sort=-n&filter=" + urlQuery("n >= 2500 && n < 7500")
	run := func(b *testing.B) {
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				serve(b, h, "GET", target, nil, 200)
			}
		})
	}
	b.Run("store", run)
	l := withLists(b, ts, redisForLists(b), listPrefix())
	serve(b, h, "GET", target, nil, 200) // fills the cache: every timed request is a hit
	b.Run("redis", run)
	if s := l.Stats(); s.Hits == 0 || s.Errors != 0 {
		b.Fatalf("list cache: %+v", s)
	}
}
