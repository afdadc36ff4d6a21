package api_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-run/strata/api"
	"github.com/strata-run/strata/guard"
)

// guarded serves ts's app through a second handler built with opts; the
// superuser token stays valid (same app).
func guarded(ts *testServer, opts api.Options) *testServer {
	ts.tb.Helper()
	srv := httptest.NewServer(api.New(ts.app, opts))
	ts.tb.Cleanup(srv.Close)
	return &testServer{tb: ts.tb, app: ts.app, srv: srv, suToken: ts.suToken}
}

// rateLimited enables settings.rateLimits with rules.
func (ts *testServer) rateLimited(rules []map[string]any, excluded ...string) {
	ts.tb.Helper()
	if excluded == nil {
		excluded = []string{}
	}
	ts.su("PATCH", "/api/settings", map[string]any{"rateLimits": map[string]any{
		"enabled": true, "rules": rules, "excludedIPs": excluded}}).status(200)
}

func rule(label, audience string, duration, max int) map[string]any {
	return map[string]any{"label": label, "audience": audience, "duration": duration, "maxRequests": max}
}

// postsFixture is a public posts collection with one record.
func postsFixture(ts *testServer) string {
	ts.tb.Helper()
	ts.collection(`{"name":"posts","listRule":"","viewRule":"","createRule":"",
		"fields":[{"name":"title","type":"text"}]}`)
	return ts.record("posts", map[string]any{"title": "hello"})
}

func TestRateLimitOffByDefault(t *testing.T) {
	ts := newTestServer(t)
	id := postsFixture(ts)
	// The default rules exist (PocketBase's) but rateLimits.enabled is false.
	ts.su("GET", "/api/settings", nil).status(200).expect("rateLimits.enabled", false)
	for range 10 {
		res := ts.do("POST", "/api/collections/users/auth-with-password", "", map[string]any{"identity": "x@y.z", "password": "nope"})
		res.status(400)
		if res.hdr.Get("RateLimit") != "" {
			t.Fatal("RateLimit header with rate limits disabled")
		}
	}
	ts.do("GET", "/api/collections/posts/records/"+id, "", nil).status(200)
}

func TestRateLimitRulesAndHeaders(t *testing.T) {
	ts := newTestServer(t)
	id := postsFixture(ts)
	ts.rateLimited([]map[string]any{
		rule("posts:view", "", 60, 2),
		rule("*:create", "", 60, 1),
		rule("/api/", "", 60, 100),
	})
	view := "/api/collections/posts/records/" + id
	res := ts.do("GET", view, "", nil).status(200)
	if got := res.hdr.Get("RateLimit-Policy"); got != "2;w=60" {
		t.Fatalf("RateLimit-Policy = %q", got)
	}
	if got := res.hdr.Get("RateLimit"); got != "limit=2, remaining=1, reset=30" {
		t.Fatalf("RateLimit = %q", got)
	}
	res = ts.do("GET", view, "", nil).status(200)
	if got := res.hdr.Get("RateLimit"); got != "limit=2, remaining=0, reset=60" {
		t.Fatalf("RateLimit = %q", got)
	}
	res = ts.do("GET", view, "", nil).expectError(429, "Too Many Requests.", map[string]any{})
	if ra, err := strconv.Atoi(res.hdr.Get("Retry-After")); err != nil || ra < 29 || ra > 30 {
		t.Fatalf("Retry-After = %q, want 30", res.hdr.Get("Retry-After"))
	}
	if got := res.hdr.Get("RateLimit"); got != "limit=2, remaining=0, reset=60" {
		t.Fatalf("429 RateLimit = %q", got)
	}
	// Other actions of the same collection have their own rule: the list
	// falls back to the /api/ prefix, creates to *:create.
	res = ts.do("GET", "/api/collections/posts/records", "", nil).status(200)
	if got := res.hdr.Get("RateLimit-Policy"); got != "100;w=60" {
		t.Fatalf("list RateLimit-Policy = %q", got)
	}
	ts.do("POST", "/api/collections/posts/records", "", map[string]any{"title": "a"}).status(200)
	ts.do("POST", "/api/collections/posts/records", "", map[string]any{"title": "b"}).status(429)
	// The collection may be named by id: the label still uses its name.
	cid := ts.su("GET", "/api/collections/posts", nil).status(200).get("id").(string)
	ts.do("GET", "/api/collections/"+cid+"/records/"+id, "", nil).status(429)

	// Superusers are never limited.
	for range 5 {
		ts.su("GET", view, nil).status(200)
	}
	// Rules apply without a restart: raise the limit, the view passes.
	ts.rateLimited([]map[string]any{rule("posts:view", "", 60, 50)})
	ts.do("GET", view, "", nil).status(200)
	// Disable: no limits, no headers.
	ts.su("PATCH", "/api/settings", map[string]any{"rateLimits": map[string]any{"enabled": false}}).status(200)
	for range 3 {
		ts.do("POST", "/api/collections/posts/records", "", map[string]any{"title": "c"}).status(200)
	}
}

func TestRateLimitAuthActions(t *testing.T) {
	ts := newTestServer(t)
	ts.user("a@strata.test")
	// PocketBase's default rules: *:auth allows 2 sign-ins per 3 s.
	ts.su("PATCH", "/api/settings", map[string]any{"rateLimits": map[string]any{"enabled": true}}).status(200)
	login := map[string]any{"identity": "a@strata.test", "password": "user-pass-123"}
	ts.do("POST", "/api/collections/users/auth-with-password", "", login).status(200)
	res := ts.do("POST", "/api/collections/users/auth-with-password", "", login).status(200)
	if got := res.hdr.Get("RateLimit-Policy"); got != "2;w=3" {
		t.Fatalf("auth RateLimit-Policy = %q", got)
	}
	ts.do("POST", "/api/collections/users/auth-with-password", "", login).expectError(429, "Too Many Requests.", map[string]any{})
	// The specific action beats the generic one.
	ts.rateLimited([]map[string]any{rule("*:auth", "", 60, 1), rule("users:authWithPassword", "", 60, 5)})
	for range 5 {
		ts.do("POST", "/api/collections/users/auth-with-password", "", login).status(200)
	}
	ts.do("POST", "/api/collections/users/auth-with-password", "", login).status(429)
	// Listing auth methods is its own action.
	ts.rateLimited([]map[string]any{rule("users:listAuthMethods", "", 60, 1)})
	ts.do("GET", "/api/collections/users/auth-methods", "", nil).status(200)
	ts.do("GET", "/api/collections/users/auth-methods", "", nil).status(429)
}

func TestRateLimitAudience(t *testing.T) {
	ts := newTestServer(t)
	postsFixture(ts)
	_, token := ts.user("reader@strata.test")
	ts.rateLimited([]map[string]any{
		rule("posts:list", "@guest", 60, 1),
		rule("posts:list", "@auth", 60, 3),
	})
	list := "/api/collections/posts/records"
	ts.do("GET", list, "", nil).status(200)
	ts.do("GET", list, "", nil).status(429)
	for range 3 {
		ts.do("GET", list, token, nil).status(200)
	}
	ts.do("GET", list, token, nil).status(429)
}

func TestRateLimitExcludedIPs(t *testing.T) {
	for _, excluded := range []string{"127.0.0.1", "127.0.0.0/8"} {
		t.Run(excluded, func(t *testing.T) {
			ts := newTestServer(t)
			id := postsFixture(ts)
			ts.rateLimited([]map[string]any{rule("posts:view", "", 60, 1)}, excluded)
			for range 5 {
				res := ts.do("GET", "/api/collections/posts/records/"+id, "", nil).status(200)
				if res.hdr.Get("RateLimit") != "" {
					t.Fatal("RateLimit header for an excluded IP")
				}
			}
		})
	}
}

// doFrom sends a GET with an X-Forwarded-For header.
func (ts *testServer) doFrom(path, forwardedFor string) *http.Response {
	ts.tb.Helper()
	req, _ := http.NewRequest("GET", ts.srv.URL+path, nil)
	req.Header.Set("X-Forwarded-For", forwardedFor)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.tb.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

func TestRateLimitKeyedByClientIP(t *testing.T) {
	ts := newTestServer(t)
	id := postsFixture(ts)
	view := "/api/collections/posts/records/" + id
	ts.rateLimited([]map[string]any{rule("posts:view", "", 60, 1)})
	// Untrusted X-Forwarded-For is ignored: both are the same peer.
	if ts.doFrom(view, "192.0.2.1").StatusCode != 200 || ts.doFrom(view, "192.0.2.2").StatusCode != 429 {
		t.Fatal("an untrusted X-Forwarded-For changed the rate-limit key")
	}
	// Once the proxy header is trusted, each client has its own budget.
	ts.su("PATCH", "/api/settings", map[string]any{"trustedProxy": map[string]any{"headers": []string{"X-Forwarded-For"}}}).status(200)
	if ts.doFrom(view, "192.0.2.3").StatusCode != 200 || ts.doFrom(view, "192.0.2.4").StatusCode != 200 {
		t.Fatal("distinct trusted client IPs share a budget")
	}
	if ts.doFrom(view, "192.0.2.3").StatusCode != 429 {
		t.Fatal("a trusted client IP was not limited")
	}
}

// tcpProxy forwards to target until closed: closing it is Redis going
// away mid-run.
type tcpProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

func TestRateLimitRedisDownMidRunFallsBackLocally(t *testing.T) {
	direct := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer direct.Close()
	if err := direct.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis at 127.0.0.1:6379 is required (make test starts it): %v", err)
	}
	proxy := newTCPProxy(t, "127.0.0.1:6379")
	client := redis.NewClient(&redis.Options{Addr: proxy.ln.Addr().String(), MaxRetries: -1,
		DialTimeout: 50 * time.Millisecond, ReadTimeout: 50 * time.Millisecond})
	defer client.Close()
	prefix := "strata:test:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	limiter := guard.NewRedis(client, guard.RedisOptions{Prefix: prefix, Timeout: 100 * time.Millisecond, Cooldown: time.Minute})
	base := newTestServer(t)
	id := postsFixture(base)
	ts := guarded(base, api.Options{RateLimiter: limiter})
	ts.rateLimited([]map[string]any{rule("posts:view", "", 60, 3)})
	view := "/api/collections/posts/records/" + id

	// Through Redis: a second node sharing the limiter's Redis sees the
	// same budget.
	ts.do("GET", view, "", nil).status(200)
	ts.do("GET", view, "", nil).status(200)
	other := guarded(base, api.Options{RateLimiter: guard.NewRedis(direct, guard.RedisOptions{Prefix: prefix})})
	other.do("GET", view, "", nil).status(200)
	ts.do("GET", view, "", nil).status(429)
	if limiter.Fallbacks() != 0 {
		t.Fatalf("fell back %d times with Redis up", limiter.Fallbacks())
	}

	// Redis goes away: no 5xx, the node keeps limiting on its own.
	proxy.close()
	codes := map[int]int{}
	for range 10 {
		codes[ts.do("GET", view, "", nil).code]++
	}
	if codes[200] != 3 || codes[429] != 7 {
		t.Fatalf("with Redis down: %v, want 3×200 then 429 (local budget)", codes)
	}
	if limiter.Fallbacks() == 0 {
		t.Fatal("no fallback counted with Redis down")
	}
	ts.su("GET", "/metrics", nil).status(200)
}

func TestOverloadSheds503(t *testing.T) {
	base := newTestServer(t)
	id := postsFixture(base)
	conc := guard.NewConcurrency(guard.ConcurrencyOptions{InitialLimit: 2, MinLimit: 2, MaxLimit: 2, MaxWait: 20 * time.Millisecond})
	ts := guarded(base, api.Options{Concurrency: conc})
	view := "/api/collections/posts/records/" + id
	ts.do("GET", view, "", nil).status(200)

	// Fill the node: two requests in flight.
	var held []guard.Ticket
	for range 2 {
		tk, ok := conc.Acquire(context.Background(), guard.PriorityRead)
		if !ok {
			t.Fatal("could not fill the limit")
		}
		held = append(held, tk)
	}
	start := time.Now()
	res := ts.do("GET", view, "", nil).expectError(503, "Service unavailable, try again later.", map[string]any{})
	if res.hdr.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After = %q", res.hdr.Get("Retry-After"))
	}
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Fatalf("shed after %v, before the queue wait", el)
	}
	ts.do("GET", "/api/collections/posts/records", "", nil).status(503)
	// Health, readiness and superusers are never shed.
	ts.do("GET", "/api/health", "", nil).status(200)
	ts.do("GET", "/readyz", "", nil).status(200)
	ts.su("GET", view, nil).status(200)
	ts.su("GET", "/metrics", nil).status(200)

	// A queued request gets the slot released while it waits.
	slow := guard.NewConcurrency(guard.ConcurrencyOptions{InitialLimit: 1, MinLimit: 1, MaxLimit: 1, MaxWait: 2 * time.Second})
	tq := guarded(base, api.Options{Concurrency: slow})
	tk, _ := slow.Acquire(context.Background(), guard.PriorityRead)
	var released atomic.Bool
	go func() {
		time.Sleep(30 * time.Millisecond)
		released.Store(true)
		tk.Release()
	}()
	tq.do("GET", view, "", nil).status(200)
	if !released.Load() {
		t.Fatal("served before the slot was free")
	}

	for _, tk := range held {
		tk.Release()
	}
	ts.do("GET", view, "", nil).status(200)
	if conc.InFlight() != 0 {
		t.Fatalf("%d slots leaked", conc.InFlight())
	}
}

func TestRequestDeadlineReachesTheStore(t *testing.T) {
	base := newTestServer(t)
	postsFixture(base)
	ts := guarded(base, api.Options{RequestTimeout: time.Nanosecond})
	if res := ts.do("GET", "/api/collections/posts/records", "", nil); res.code == 200 {
		t.Fatalf("list answered 200 past its deadline: %s", res.body)
	}
	ts.do("GET", "/api/health", "", nil).status(200)
	// A generous deadline changes nothing.
	ok := guarded(base, api.Options{RequestTimeout: time.Minute})
	ok.do("GET", "/api/collections/posts/records", "", nil).status(200)
}

// BenchmarkRecordViewGuarded is BenchmarkRecordView with rate limits on
// (a rule that never trips) and the adaptive concurrency limit: the cost
// the guard adds to the hottest path.
func BenchmarkRecordViewGuarded(b *testing.B) {
	ts, ids := benchFixture(b, 10000)
	ts.rateLimited([]map[string]any{rule("posts:view", "", 1, 1<<30)})
	h := api.New(ts.app, api.Options{Concurrency: guard.NewConcurrency(guard.ConcurrencyOptions{}), RequestTimeout: 10 * time.Second})
	ids = ids[:1000]
	var i atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := ids[int(i.Add(1))%len(ids)]
			serve(b, h, "GET", "/api/collections/posts/records/"+id, nil, 200)
		}
	})
}
