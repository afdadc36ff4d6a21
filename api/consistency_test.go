package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/api"
	"github.com/strata-run/strata/cache"
	"github.com/strata-run/strata/service"
	"github.com/strata-run/strata/store/postgres"
	"github.com/strata-run/strata/store/postgres/pgtest"
)

// TestReadYourWritesHTTP runs nodes on a PostgreSQL primary with a replica
// that applies commits a second late (one cluster for all the subtests,
// which run in turn: starting a cluster costs seconds).
func TestReadYourWritesHTTP(t *testing.T) {
	f := startReplicated(t, time.Second)
	t.Run("TokenHeader", func(t *testing.T) { testTokenHeader(t, f) })
	t.Run("SharedRedis", func(t *testing.T) { testSharedRedis(t, f) })
	t.Run("RedisDown", func(t *testing.T) { testRedisDown(t, f) })
}

// replicated is a service on a primary and one lagging replica.
type replicated struct {
	cl    *pgtest.Cluster
	st    *postgres.Store
	app   *service.App
	delay time.Duration
}

func startReplicated(t *testing.T, delay time.Duration) *replicated {
	cl := pgtest.Start(t, pgtest.Options{ApplyDelay: delay})
	ctx := context.Background()
	// The lag bound is far away: a replica whose replay the tests pause
	// must keep serving reads, however slowly the test runs.
	st, err := postgres.Open(ctx, cl.Primary.DSN(), postgres.Options{Replicas: []string{cl.Replica.DSN()},
		ReplicaCheckEvery: 50 * time.Millisecond, MaxReplicaLag: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	app, err := service.New(ctx, service.Config{Store: st, Cache: cache.New(cache.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.UpsertSuperuser(ctx, suEmail, suPass); err != nil {
		t.Fatal(err)
	}
	return &replicated{cl: cl, st: st, app: app, delay: delay}
}

// node starts one more HTTP node on the service; share, when set, is its
// cluster-wide token memory.
func (f *replicated) node(t *testing.T, share *api.RedisTokens) *testServer {
	t.Helper()
	h := api.New(f.app, api.Options{})
	if share != nil {
		h.ShareTokens(share)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ts := &testServer{tb: t, app: f.app, srv: srv}
	res := ts.do("POST", "/api/collections/_superusers/auth-with-password", "", map[string]any{"identity": suEmail, "password": suPass})
	ts.suToken = res.status(200).json()["token"].(string)
	return ts
}

// testTokenHeader: a client that wrote through node 1 reads its write on
// node 1 without sending the token back (the node remembers it), and on
// node 2 only when it sends the token: without it, node 2 reads the
// lagging replica.
func testTokenHeader(t *testing.T, f *replicated) {
	delay, st := f.delay, f.st
	n1, n2 := f.node(t, nil), f.node(t, nil)
	n1.collection(`{"name":"notes","type":"base","listRule":"","viewRule":"","createRule":"","fields":[{"name":"title","type":"text"}]}`)

	// Sign-up then sign-in right away: the sign-in reads the new user.
	_, userToken := n1.user("rw@strata.test")
	time.Sleep(delay + 500*time.Millisecond) // the replica catches up

	created := n1.do("POST", "/api/collections/notes/records", userToken, map[string]any{"title": "fresh"}).status(200)
	token := created.hdr.Get(api.ConsistencyHeader)
	if _, err := strata.ParseToken(token); err != nil {
		t.Fatalf("write response token %q: %v", token, err)
	}
	list := "/api/collections/notes/records?filter=" + q(`title="fresh"`)

	// Node 1 remembers the caller's token.
	n1.do("GET", list, userToken, nil).status(200).expect("totalItems", 1.0)
	// Node 2 without the token reads the replica, a second behind...
	n2.do("GET", list, userToken, nil).status(200).expect("totalItems", 0.0)
	// ...and with it, reads the write.
	req, _ := http.NewRequest("GET", n2.srv.URL+list, nil)
	req.Header.Set("Authorization", userToken)
	req.Header.Set(api.ConsistencyHeader, token)
	hres, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer hres.Body.Close()
	var body struct{ TotalItems int }
	if err := json.NewDecoder(hres.Body).Decode(&body); err != nil || hres.StatusCode != 200 || body.TotalItems != 1 {
		t.Fatalf("node 2 with the token: %d, totalItems %d (%v), want 200 and 1", hres.StatusCode, body.TotalItems, err)
	}
	var replicaReads int64
	for _, r := range st.ReadStats().Replicas {
		replicaReads += r.Reads
	}
	if replicaReads == 0 {
		t.Fatal("no read went to the replica")
	}
}
