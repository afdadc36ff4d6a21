package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/api"
	"github.com/strata-run/strata/cache"
	"github.com/strata-run/strata/service"
	"github.com/strata-run/strata/store/postgres"
	"github.com/strata-run/strata/store/postgres/pgtest"
)

// Shape of BenchmarkReplicaShare's mix: one round is every client sending
// replicaOps requests, 90% reads (view, list) and 10% writes (create,
// update). Small on purpose: `make bench` runs one round, and starting the
// cluster already takes seconds.
const (
	replicaAnon  = 4 // anonymous clients reading and writing public posts
	replicaUsers = 4 // signed-in users re-reading their own notes
	replicaOps   = 100
	replicaPosts = 200
)

// BenchmarkReplicaShare serves the API from a PostgreSQL primary with one
// streaming replica and runs a 90/10 read/write mix: anonymous clients on
// public posts, and users who update their own note and then read it back
// (by id and in a list) without sending the consistency token, relying on
// the node to remember it. It reports the share of the store's reads the
// replica served (views answered from the record cache reach no database;
// cache misses read the primary) and the reads that missed the reader's
// own last write, which must be zero.
func BenchmarkReplicaShare(b *testing.B) {
	ctx := context.Background()
	cl := pgtest.Start(b, pgtest.Options{})
	reg := prometheus.NewRegistry()
	st, err := postgres.Open(ctx, cl.Primary.DSN(), postgres.Options{Replicas: []string{cl.Replica.DSN()},
		ReplicaCheckEvery: 50 * time.Millisecond, Registerer: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	app, err := service.New(ctx, service.Config{Store: st, Cache: cache.New(cache.Options{})})
	if err != nil {
		b.Fatal(err)
	}
	wctx, written := strata.WithWriteTokens(ctx)
	if _, err := app.UpsertSuperuser(wctx, suEmail, suPass); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api.New(app, api.Options{}))
	b.Cleanup(srv.Close)
	ts := &testServer{tb: b, app: app, srv: srv}
	// The superuser was written behind the API's back: the sign-in must
	// say how far a replica has to be to know it.
	ts.suToken = ts.doWith("POST", "/api/collections/_superusers/auth-with-password", "",
		map[string]any{"identity": suEmail, "password": suPass},
		map[string]string{api.ConsistencyHeader: strata.FormatToken(written.Latest())}).status(200).get("token").(string)
	// Each client gets its own address: the node remembers write tokens
	// per client address too, and on loopback one client's write would
	// send everyone's reads to the primary.
	ts.su("PATCH", "/api/settings", map[string]any{"trustedProxy": map[string]any{"headers": []string{"X-Forwarded-For"}}}).status(200)

	ts.collection(`{"name":"posts","listRule":"","viewRule":"","createRule":"","updateRule":"",
		"fields":[{"name":"title","type":"text"},{"name":"n","type":"number"}],
		"indexes":["CREATE INDEX idx_posts_n ON posts (n)"]}`)
	ts.collection(`{"name":"notes","listRule":"owner = @request.auth.id","viewRule":"owner = @request.auth.id",
		"createRule":"owner = @request.auth.id","updateRule":"owner = @request.auth.id",
		"fields":[{"name":"owner","type":"relation","collectionId":"users","maxSelect":1},{"name":"v","type":"number"}]}`)
	ts.su("PATCH", "/api/settings", map[string]any{"batch": map[string]any{"enabled": true, "maxRequests": replicaPosts}}).status(200)
	var reqs []any
	for i := range replicaPosts {
		reqs = append(reqs, map[string]any{"method": "POST", "url": "/api/collections/posts/records",
			"body": map[string]any{"title": fmt.Sprintf("post %d", i), "n": i}})
	}
	var seeded []struct {
		Body struct{ ID string } `json:"body"`
	}
	if err := json.Unmarshal(ts.su("POST", "/api/batch", map[string]any{"requests": reqs}).status(200).body, &seeded); err != nil {
		b.Fatal(err)
	}
	posts := make([]string, len(seeded))
	for i, s := range seeded {
		posts[i] = s.Body.ID
	}
	users := make([]*noteWriter, replicaUsers)
	for i := range users {
		id, token := ts.user(fmt.Sprintf("reader%d@strata.test", i))
		note := ts.do("POST", "/api/collections/notes/records", token, map[string]any{"owner": id, "v": 0}).status(200).get("id").(string)
		users[i] = &noteWriter{owner: id, token: token, note: note}
	}
	// Steady state: the hot set is cached, as on a node that has been up
	// for a while (a cold miss reads the primary).
	for _, id := range posts {
		ts.do("GET", "/api/collections/posts/records/"+id, "", nil).status(200)
	}
	for _, u := range users {
		ts.do("GET", "/api/collections/notes/records/"+u.note, u.token, nil).status(200)
	}
	waitForReplica(b, ts, st)
	reasons := readReasons(b, reg)

	// Enough idle connections for every client: the default two per host
	// would open and close connections all through the mix.
	tr := &http.Transport{MaxIdleConnsPerHost: replicaAnon + replicaUsers}
	b.Cleanup(tr.CloseIdleConnections)
	c := &mixClient{base: srv.URL, client: &http.Client{Transport: tr}}
	before := st.ReadStats()
	start := time.Now()
	for b.Loop() {
		var wg sync.WaitGroup
		for w := range replicaAnon {
			wg.Go(func() {
				rnd := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
				ip := fmt.Sprintf("10.0.1.%d", w+1)
				for range replicaOps {
					c.anonOp(rnd, ip, posts)
				}
			})
		}
		for w, u := range users {
			wg.Go(func() {
				rnd := rand.New(rand.NewPCG(uint64(replicaAnon+w), uint64(time.Now().UnixNano())))
				ip := fmt.Sprintf("10.0.2.%d", w+1)
				for range replicaOps {
					c.userOp(rnd, ip, u)
				}
			})
		}
		wg.Wait()
	}
	elapsed := time.Since(start)
	after := st.ReadStats()
	now := readReasons(b, reg)
	for _, k := range slices.Sorted(maps.Keys(now)) {
		if d := now[k] - reasons[k]; d > 0 {
			b.Logf("store reads %s: %.0f", k, d)
		}
	}

	if n := c.failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed; first: %s", n, c.requests.Load(), c.firstErr.Load())
	}
	onPrimary := after.Primary - before.Primary
	var onReplica int64
	for i, r := range after.Replicas {
		onReplica += r.Reads - before.Replicas[i].Reads
	}
	if onReplica == 0 {
		b.Fatalf("the replica served no read: %+v", after)
	}
	reads, writes := c.reads.Load(), c.writes.Load()
	b.ReportMetric(float64(onReplica)/float64(onReplica+onPrimary), "replica-share")
	b.ReportMetric(float64(onReplica+onPrimary)/float64(reads), "store-reads/read")
	b.ReportMetric(float64(reads)/float64(reads+writes), "read-fraction")
	b.ReportMetric(float64(c.stale.Load()), "stale-reads")
	b.ReportMetric(float64(reads+writes)/elapsed.Seconds(), "req/s")
	if n := c.stale.Load(); n > 0 {
		b.Fatalf("%d reads missed the reader's own last write", n)
	}
}

// waitForReplica returns once the router uses the replica: healthy, and
// far enough along to have the collections (until then reads fall back to
// the primary, which is correct but not what is being measured).
func waitForReplica(b *testing.B, ts *testServer, st *postgres.Store) {
	b.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var before int64
		for _, r := range st.ReadStats().Replicas {
			before += r.Reads
		}
		ts.do("GET", "/api/collections/posts/records?perPage=1&skipTotal=1", "", nil).status(200)
		var after int64
		for _, r := range st.ReadStats().Replicas {
			after += r.Reads
		}
		if after > before {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the replica never served a read: %+v", st.ReadStats())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readReasons reads strata_store_reads_total by pool and reason, to show
// why reads went where they went.
func readReasons(b *testing.B, reg *prometheus.Registry) map[string]float64 {
	b.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "strata_store_reads_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var pool, reason string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "pool":
					pool = l.GetValue()
				case "reason":
					reason = l.GetValue()
				}
			}
			out[pool+"/"+reason] += m.GetCounter().GetValue()
		}
	}
	return out
}

// noteWriter is a signed-in user with one note whose v it keeps raising;
// one goroutine owns it.
type noteWriter struct {
	owner, token, note string
	v                  int
}

// mixClient sends the mix's requests and counts what came back. Failures
// are counted, not fatal: only the benchmark's goroutine may stop it.
type mixClient struct {
	base                                   string
	client                                 *http.Client
	requests, reads, writes, failed, stale atomic.Int64
	firstErr                               atomic.Value // string
}

// anonOp is one anonymous request: 45% view, 45% list, 5% create, 5%
// update, on public posts.
func (c *mixClient) anonOp(rnd *rand.Rand, ip string, posts []string) {
	id := posts[rnd.IntN(len(posts))]
	switch p := rnd.IntN(100); {
	case p < 45:
		c.read(ip, "GET", "/api/collections/posts/records/"+id, "", nil)
	case p < 90:
		lo := rnd.IntN(replicaPosts - 20)
		c.read(ip, "GET", "/api/collections/posts/records?perPage=20&skipTotal=1&sort=-n&filter="+
			q(fmt.Sprintf("n >= %d && n < %d", lo, lo+20)), "", nil)
	case p < 95:
		c.write(ip, "POST", "/api/collections/posts/records", "", map[string]any{"title": "new", "n": replicaPosts + rnd.IntN(1000)})
	default:
		c.write(ip, "PATCH", "/api/collections/posts/records/"+id, "", map[string]any{"title": fmt.Sprint("edited ", rnd.Int())})
	}
}

// userOp is one request of a signed-in user: 10% raise v on their note,
// else read it back by id or in a list, which must show the latest v.
func (c *mixClient) userOp(rnd *rand.Rand, ip string, u *noteWriter) {
	var body []byte
	switch p := rnd.IntN(100); {
	case p < 10:
		if c.write(ip, "PATCH", "/api/collections/notes/records/"+u.note, u.token, map[string]any{"v": u.v + 1}) {
			u.v++
		}
		return
	case p < 55:
		var ok bool
		if body, ok = c.read(ip, "GET", "/api/collections/notes/records/"+u.note, u.token, nil); !ok {
			return
		}
	default:
		var ok bool
		if body, ok = c.read(ip, "GET", "/api/collections/notes/records?skipTotal=1&filter="+q(`id = "`+u.note+`"`), u.token, nil); !ok {
			return
		}
		var page struct{ Items []json.RawMessage }
		if err := json.Unmarshal(body, &page); err != nil || len(page.Items) != 1 {
			c.stale.Add(1) // the note itself is missing
			return
		}
		body = page.Items[0]
	}
	var rec struct{ V int }
	if err := json.Unmarshal(body, &rec); err != nil || rec.V != u.v {
		c.stale.Add(1)
	}
}

func (c *mixClient) read(ip, method, path, token string, body any) ([]byte, bool) {
	c.reads.Add(1)
	return c.send(ip, method, path, token, body)
}

func (c *mixClient) write(ip, method, path, token string, body any) bool {
	c.writes.Add(1)
	_, ok := c.send(ip, method, path, token, body)
	return ok
}

// send returns the body of a 2xx answer; anything else is a failure. ip is
// the client's address, sent as X-Forwarded-For.
func (c *mixClient) send(ip, method, path, token string, body any) ([]byte, bool) {
	c.requests.Add(1)
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.fail(err.Error())
		return nil, false
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	req.Header.Set("X-Forwarded-For", ip)
	res, err := c.client.Do(req)
	if err != nil {
		c.fail(err.Error())
		return nil, false
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode/100 != 2 {
		c.fail(fmt.Sprintf("%s %s: %d %s %v", method, path, res.StatusCode, raw, err))
		return nil, false
	}
	return raw, true
}

func (c *mixClient) fail(msg string) {
	c.failed.Add(1)
	c.firstErr.CompareAndSwap(nil, msg)
}
