package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	randv2 "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// scenario is a weighted mix of operations.
type scenario struct {
	desc    string
	ops     []string
	weights []int
}

func (s scenario) pick(rnd *randv2.Rand) string {
	if len(s.ops) == 1 {
		return s.ops[0]
	}
	sum := 0
	for _, w := range s.weights {
		sum += w
	}
	n := rnd.IntN(sum)
	for i, w := range s.weights {
		if n < w {
			return s.ops[i]
		}
		n -= w
	}
	return s.ops[len(s.ops)-1]
}

func (s scenario) uses(op string) bool { return slices.Contains(s.ops, op) }

// scenarios are the built-in scenarios by name.
var scenarios = map[string]scenario{
	"view": {desc: "GET a seeded record by id", ops: []string{"view"}},
	"list": {desc: "GET 20 records with a range filter on an indexed number, sorted by it, skipTotal", ops: []string{"list"}},
	"search": {desc: "GET 20 records whose title contains a number (a scan), sorted by -n, with the total count",
		ops: []string{"search"}},
	"create": {desc: "POST a 3-field record", ops: []string{"create"}},
	"update": {desc: "PATCH a seeded record", ops: []string{"update"}},
	"refresh": {desc: "auth-refresh with a users record's token (a token check and a new token, no password hash)",
		ops: []string{"refresh"}},
	"auth": {desc: "auth-with-password as a users record", ops: []string{"auth"}},
	"mixed": {desc: "70% view, 15% list, 10% create, 5% update",
		ops: []string{"view", "list", "create", "update"}, weights: []int{70, 15, 10, 5}},
	RealtimeScenario: {desc: "POST records while --subscribers SSE clients watch the collection; delivery latency, every event exactly once",
		ops: []string{"create"}},
}

// ScenarioNames lists the built-in scenarios.
func ScenarioNames() []string {
	names := make([]string, 0, len(scenarios))
	for n := range scenarios {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ScenarioDescription describes a built-in scenario.
func ScenarioDescription(name string) string { return scenarios[name].desc }

// target is the server under test and what was seeded on it.
type target struct {
	client  *http.Client
	base    string
	token   string // superuser
	coll    string
	ids     []string
	records int
	server  string // Server header, if any

	userID, userEmail, userPass string
	authBody                    []byte
	userToken                   string

	rt *fanout // realtime scenario: its creates are marked and awaited
}

const userCollection = "users"

// setup signs in, creates a collection named bench_<random> with public
// rules and seeds it; for the auth scenario it also creates a user.
func (t *target) setup(ctx context.Context, cfg Config, sc scenario) error {
	var auth struct{ Token string }
	if _, err := t.call(ctx, "POST", "/api/collections/_superusers/auth-with-password", map[string]any{"identity": cfg.Email, "password": cfg.Password}, &auth); err != nil {
		return fmt.Errorf("superuser sign-in: %w", err)
	}
	t.token = auth.Token
	suffix := randomHex(4)
	t.coll = "bench_" + suffix
	t.records = cfg.Records
	_, err := t.call(ctx, "POST", "/api/collections", map[string]any{
		"name": t.coll, "type": "base",
		"listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": nil,
		"fields": []any{
			map[string]any{"name": "title", "type": "text"},
			map[string]any{"name": "n", "type": "number"},
			map[string]any{"name": "body", "type": "text"},
			map[string]any{"name": "created", "type": "autodate", "onCreate": true},
			map[string]any{"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true},
		},
		"indexes": []string{fmt.Sprintf("CREATE INDEX idx_%s_n ON %s (n)", t.coll, t.coll)},
	}, nil)
	if err != nil {
		return fmt.Errorf("create collection %s: %w", t.coll, err)
	}
	if err := t.seed(ctx, cfg.Records); err != nil {
		return err
	}
	if sc.uses("auth") || sc.uses("refresh") {
		t.userEmail = "bench-" + suffix + "@strata.test"
		t.userPass = "bench-pass-" + suffix
		var u struct{ ID string }
		if _, err := t.call(ctx, "POST", "/api/collections/"+userCollection+"/records", map[string]any{
			"email": t.userEmail, "password": t.userPass, "passwordConfirm": t.userPass}, &u); err != nil {
			return fmt.Errorf("create user: %w", err)
		}
		t.userID = u.ID
		t.authBody, _ = json.Marshal(map[string]any{"identity": t.userEmail, "password": t.userPass})
		var signed struct{ Token string }
		if _, err := t.call(ctx, "POST", "/api/collections/"+userCollection+"/auth-with-password", map[string]any{
			"identity": t.userEmail, "password": t.userPass}, &signed); err != nil {
			return fmt.Errorf("user sign-in: %w", err)
		}
		t.userToken = signed.Token
	}
	return nil
}

// seed creates n records with 16 concurrent requests (plain creates work on
// every server; the batch API may be disabled).
func (t *target) seed(ctx context.Context, n int) error {
	t.ids = make([]string, n)
	var next, failed int
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n || ctx.Err() != nil {
					return
				}
				var rec struct{ ID string }
				_, err := t.call(ctx, "POST", "/api/collections/"+t.coll+"/records", map[string]any{
					"title": fmt.Sprintf("post number %d", i), "n": i, "body": strings.Repeat("lorem ipsum ", 8)}, &rec)
				mu.Lock()
				if err != nil {
					failed++
					firstErr = err
				}
				t.ids[i] = rec.ID
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed > 0 {
		return fmt.Errorf("seed: %d of %d creates failed: %w", failed, n, firstErr)
	}
	return ctx.Err()
}

// cleanup deletes what setup created.
func (t *target) cleanup(ctx context.Context) {
	if t.userID != "" {
		t.call(ctx, "DELETE", "/api/collections/"+userCollection+"/records/"+t.userID, nil, nil)
	}
	if t.coll != "" {
		t.call(ctx, "DELETE", "/api/collections/"+t.coll, nil, nil)
	}
}

// call sends a superuser request and decodes a 2xx JSON answer into out.
func (t *target) call(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if t.token != "" {
		req.Header.Set("Authorization", t.token)
	}
	res, err := t.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if s := res.Header.Get("Server"); s != "" {
		t.server = s
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return res.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return res.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return res.StatusCode, nil
}

// do sends one request of op and drains the answer.
func (t *target) do(ctx context.Context, op string, rnd *randv2.Rand) (int, error) {
	if op == "create" && t.rt != nil {
		return t.rt.create(ctx, t)
	}
	method, path, body, err := t.request(op, rnd)
	if err != nil {
		return 0, err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if op == "refresh" {
		req.Header.Set("Authorization", t.userToken)
	}
	res, err := t.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, err
}

// request builds one request of op: method, path with query, JSON body.
func (t *target) request(op string, rnd *randv2.Rand) (method, path string, body []byte, err error) {
	recs := "/api/collections/" + t.coll + "/records"
	switch op {
	case "view":
		return "GET", recs + "/" + t.ids[rnd.IntN(len(t.ids))], nil, nil
	case "list":
		lo := rnd.IntN(max(t.records/2, 1))
		f := fmt.Sprintf("n >= %d && n < %d", lo, lo+t.records/2)
		return "GET", recs + "?perPage=20&sort=-n&skipTotal=1&filter=" + url.QueryEscape(f), nil, nil
	case "search":
		f := fmt.Sprintf("title ~ '%d'", rnd.IntN(100))
		return "GET", recs + "?perPage=20&sort=-n&filter=" + url.QueryEscape(f), nil, nil
	case "create":
		return "POST", recs, fmt.Appendf(nil, `{"title":"created by strata bench","n":%d,"body":"lorem ipsum dolor sit amet"}`, rnd.IntN(1_000_000)), nil
	case "update":
		return "PATCH", recs + "/" + t.ids[rnd.IntN(len(t.ids))], fmt.Appendf(nil, `{"title":"updated by strata bench %d"}`, rnd.IntN(1_000_000)), nil
	case "auth":
		return "POST", "/api/collections/" + userCollection + "/auth-with-password", t.authBody, nil
	case "refresh":
		return "POST", "/api/collections/" + userCollection + "/auth-refresh", nil, nil
	}
	return "", "", nil, fmt.Errorf("unknown op %q", op)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
