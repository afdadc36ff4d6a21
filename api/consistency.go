package api

import (
	"context"
	"net/http"
	"sync"

	"github.com/strata-run/strata"
)

// Read-your-writes over read replicas (ARCHITECTURE.md §4).
//
// Every response to a request that wrote carries the write's consistency
// token in ConsistencyHeader; a request may send a token back in the same
// header. The node also remembers the latest token of each caller (the
// auth record, and the client IP, so that a sign-up followed by a sign-in
// and a first read stays consistent), so a client that ignores the header
// still reads its own writes on this node. Reads then carry the largest of
// these tokens and the store serves them from a replica only if it has
// replayed that far. Stores without replicas report no tokens, and then no
// header is sent.
//
// The node's memory covers only the requests it serves; ShareTokens adds a
// Redis memory shared by every node (consistency_redis.go), so a client
// behind a load balancer reads its writes whichever node serves it.

// ConsistencyHeader carries a consistency token in both directions.
const ConsistencyHeader = "X-Strata-Consistency"

// maxRememberedTokens bounds the per-caller token memory. Forgetting a
// token is harmless once the replicas are past it, which takes about the
// replica lag, so a bound far above the callers active in that time is
// enough.
const maxRememberedTokens = 100_000

// tokenMemory keeps the latest token per caller in two generations: new
// entries go to cur, and when cur is full it becomes prev and the oldest
// generation is dropped. Lookups read both. The zero value is ready.
type tokenMemory struct {
	mu        sync.Mutex
	cur, prev map[string]uint64

	// shared, when set, is the cluster-wide memory; it is consulted only
	// when the store has replicas (set before serving, never changed).
	shared *RedisTokens
}

// replicated is implemented by stores that may serve reads from replicas
// (store/postgres); only for those can a remembered token change a read.
type replicated interface{ HasReplicas() bool }

// ShareTokens makes the node keep and look up its callers' consistency
// tokens in t as well, so that a write through any node is read back on
// every node. It must be called before the server serves requests. With a
// store that has no read replicas it does nothing: tokens never change
// where such a store reads, and the Redis round trips would be wasted.
func (s *Server) ShareTokens(t *RedisTokens) {
	if rs, ok := s.app.Store().(replicated); !ok || !rs.HasReplicas() {
		return
	}
	s.reg.MustRegister(t.fallbackC)
	s.tokens.shared = t
}

func (m *tokenMemory) get(key string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return max(m.cur[key], m.prev[key])
}

func (m *tokenMemory) note(key string, t uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil || len(m.cur) >= maxRememberedTokens/2 {
		m.prev, m.cur = m.cur, make(map[string]uint64)
	}
	m.cur[key] = max(t, m.cur[key], m.prev[key])
}

// callerKeys names the caller for the token memory.
func (s *Server) callerKeys(r *http.Request, info *strata.RequestInfo) []string {
	keys := []string{"ip:" + s.clientIP(r)}
	if info.Auth != nil && info.Auth.Collection != nil {
		keys = append(keys, "auth:"+info.Auth.Collection.ID+"/"+info.Auth.ID())
	}
	return keys
}

// consistency prepares a request for read-your-writes: its reads carry the
// caller's latest token, and the token of any write it makes is sent in the
// response and remembered. It runs after authentication.
func (s *Server) consistency(w http.ResponseWriter, r *http.Request, info *strata.RequestInfo) (http.ResponseWriter, *http.Request) {
	keys := s.callerKeys(r, info)
	var token uint64
	if v := r.Header.Get(ConsistencyHeader); v != "" {
		// A malformed token is ignored: it can only make reads staler.
		token, _ = strata.ParseToken(v)
	}
	for _, k := range keys {
		token = max(token, s.tokens.get(k))
	}
	if sh := s.tokens.shared; sh != nil {
		token = max(token, sh.get(r.Context(), keys))
	}
	ctx := strata.WithReadAfter(r.Context(), token)
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		// Reads do not write: no collector, and the writer stays
		// unwrapped (realtime streams need its Flush).
		return w, r.WithContext(ctx)
	}
	ctx, writes := strata.WithWriteTokens(ctx)
	return &tokenWriter{ResponseWriter: w, s: s, ctx: ctx, keys: keys, writes: writes}, r.WithContext(ctx)
}

// tokenWriter adds the write token to the response headers, and remembers
// it, before the response starts: the client cannot send its next request
// before both happened.
type tokenWriter struct {
	http.ResponseWriter
	s       *Server
	ctx     context.Context
	keys    []string
	writes  *strata.WriteTokens
	started bool
}

func (w *tokenWriter) WriteHeader(code int) {
	if !w.started {
		w.started = true
		if t := w.writes.Latest(); t != 0 {
			w.Header().Set(ConsistencyHeader, strata.FormatToken(t))
			for _, k := range w.keys {
				w.s.tokens.note(k, t)
			}
			if sh := w.s.tokens.shared; sh != nil {
				sh.note(w.ctx, w.keys, t)
			}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *tokenWriter) Write(b []byte) (int, error) {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *tokenWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher.
func (w *tokenWriter) Flush() {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
