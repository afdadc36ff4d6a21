package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/strata-run/strata/api"
	"github.com/strata-run/strata/guard"
	"github.com/strata-run/strata/service"
)

// The benchmarks drive the real handler in-process (no sockets), so they
// measure Strata's own cost per request. BenchmarkBaseline is the bare
// net/http handler returning 200 bytes of JSON: compare ratios to it, not
// absolute numbers (see docs/benchmarks.md).

var helloBody = bytes.Repeat([]byte("x"), 200)

func BenchmarkBaseline(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(helloBody)
	})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serve(b, h, "GET", "/", nil, 200)
		}
	})
}

// benchFixture seeds a public "posts" collection with n records, an index
// on n, and a user for sign-in benchmarks.
func benchFixture(b *testing.B, n int) (*testServer, []string) {
	b.Helper()
	ts := newTestServer(b)
	ts.su("POST", "/api/collections", map[string]any{
		"name": "posts", "listRule": "", "viewRule": "", "createRule": "",
		"fields": []any{
			map[string]any{"name": "title", "type": "text"},
			map[string]any{"name": "n", "type": "number"},
			map[string]any{"name": "body", "type": "text"},
			map[string]any{"name": "created", "type": "autodate", "onCreate": true},
		},
		"indexes": []string{"CREATE INDEX idx_posts_n ON posts (n)"},
	}).status(200)
	ts.su("PATCH", "/api/settings", map[string]any{"batch": map[string]any{"enabled": true, "maxRequests": 1000, "timeout": 60}}).status(200)
	var ids []string
	for start := 0; start < n; start += 1000 {
		var reqs []any
		for i := start; i < min(start+1000, n); i++ {
			reqs = append(reqs, map[string]any{"method": "POST", "url": "/api/collections/posts/records",
				"body": map[string]any{"title": fmt.Sprintf("post %d", i), "n": i, "body": "lorem ipsum dolor sit amet"}})
		}
		res := ts.su("POST", "/api/batch", map[string]any{"requests": reqs}).status(200)
		var out []struct {
			Body struct {
				ID string `json:"id"`
			} `json:"body"`
		}
		if err := json.Unmarshal(res.body, &out); err != nil {
			b.Fatal(err)
		}
		for _, o := range out {
			ids = append(ids, o.Body.ID)
		}
	}
	ts.su("POST", "/api/collections/users/records", map[string]any{
		"email": "bench@strata.test", "password": "bench-pass-1", "passwordConfirm": "bench-pass-1"}).status(200)
	return ts, ids
}

// serve runs one request through h without a network round trip.
func serve(b *testing.B, h http.Handler, method, target string, body []byte, want int) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != want {
		b.Fatalf("%s %s: %d %s", method, target, w.Code, w.Body.Bytes())
	}
}

func BenchmarkRecordView(b *testing.B) {
	ts, ids := benchFixture(b, 10000)
	h := ts.srv.Config.Handler
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

func benchList(b *testing.B, skipTotal bool) {
	ts, _ := benchFixture(b, 10000)
	h := ts.srv.Config.Handler
	target := "/api/collections/posts/records?perPage=20&sort=-n&filter=" + url.QueryEscape("n >= 2500 && n < 7500")
	if skipTotal {
		target += "&skipTotal=1"
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serve(b, h, "GET", target, nil, 200)
		}
	})
}

func BenchmarkRecordListSkipTotal(b *testing.B) { benchList(b, true) }
func BenchmarkRecordListTotal(b *testing.B)     { benchList(b, false) }

func BenchmarkRecordCreate(b *testing.B) {
	ts, _ := benchFixture(b, 10000)
	h := ts.srv.Config.Handler
	body := []byte(`{"title":"created","n":42,"body":"lorem ipsum dolor sit amet"}`)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serve(b, h, "POST", "/api/collections/posts/records", body, 200)
		}
	})
}

func BenchmarkAuthWithPassword(b *testing.B) {
	ts, _ := benchFixture(b, 0)
	// Measures hashing throughput, not the attempt limiter.
	ts.app.SetAuthLimits(service.AuthLimits{Disabled: true})
	h := ts.srv.Config.Handler
	body := []byte(`{"identity":"bench@strata.test","password":"bench-pass-1"}`)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serve(b, h, "POST", "/api/collections/users/auth-with-password", body, 200)
		}
	})
}

// BenchmarkShed is the cost of refusing a request over the concurrency
// limit: under a spike most requests take this path, so it must stay a
// small multiple of BenchmarkBaseline.
func BenchmarkShed(b *testing.B) {
	ts := newTestServer(b)
	conc := guard.NewConcurrency(guard.ConcurrencyOptions{InitialLimit: 1, MinLimit: 1, MaxLimit: 1, MaxWait: -1})
	held, _ := conc.Acquire(context.Background(), guard.PriorityRead)
	defer held.Release()
	h := api.New(ts.app, api.Options{Concurrency: conc})
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serve(b, h, "GET", "/api/collections/users/records?perPage=20", nil, http.StatusServiceUnavailable)
		}
	})
}

// BenchmarkShedTCP is a refusal over a real loopback connection, against
// net/http answering the same 503 with nothing else. The in-process
// BenchmarkShed leaves out what a refusal costs at the socket (a read, a
// write that runs the peer's TCP receive, the response headers); under a
// spike on shared cores that is most of a refusal's price. Client and
// server share the process, so compare the two sub-benchmarks' difference:
// it is what Strata adds to each refusal.
func BenchmarkShedTCP(b *testing.B) {
	const target = "/api/collections/users/records?perPage=20"
	b.Run("net-http", func(b *testing.B) {
		benchTCP(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = []string{"application/json"}
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"status":503,"message":"Service unavailable, try again later.","data":{}}`))
		}), target)
	})
	b.Run("strata", func(b *testing.B) {
		ts := newTestServer(b)
		conc := guard.NewConcurrency(guard.ConcurrencyOptions{InitialLimit: 1, MinLimit: 1, MaxLimit: 1, MaxWait: -1})
		held, _ := conc.Acquire(context.Background(), guard.PriorityRead)
		defer held.Release()
		benchTCP(b, api.New(ts.app, api.Options{Concurrency: conc}), target)
	})
}

// benchTCP sends GET target over keep-alive connections, one per
// goroutine, and expects 503 answers.
func benchTCP(b *testing.B, h http.Handler, target string) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	req := []byte("GET " + target + " HTTP/1.1\r\nHost: bench\r\n\r\n")
	b.ReportAllocs()
	// 32 connections on two cores keep both busy, as a spike does: ns/op
	// is then CPU per request, not a round trip's latency.
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusServiceUnavailable {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
}
