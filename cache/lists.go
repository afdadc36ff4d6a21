package cache

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/strata-run/strata"
)

// Lists is the optional L2 cache of list responses, shared by every node
// through Redis (docs/list-cache.md). It holds finished response bodies
// under a key that covers everything the body depends on, the caller's
// rule inputs included (see listKey), so a page is only ever served to a
// request that would have produced the same bytes.
//
// Freshness comes from one generation counter per collection
// (<prefix>gen:<collectionId>): the node that commits a write bumps it
// before the write is answered, and every stored page carries the
// generations it was read under. A lookup reads the current generations
// and the page in one round trip and uses the page only if they still
// match, so a write is visible to the next list on any node.
//
// Redis being slow or down never fails a request: after an error the node
// bypasses the cache for a cool-down and serves lists from the store.
type Lists struct {
	client        redis.UniversalClient
	prefix        string
	ttl           time.Duration
	maxEntryBytes int
	timeout       time.Duration
	cooldown      time.Duration
	log           *slog.Logger

	downUntil atomic.Int64 // unix nanos; the cache is bypassed until then

	// pending holds collections whose generation bump failed: this node
	// must not read or fill pages of them until the bump reaches Redis.
	pendingMu sync.Mutex
	pending   map[string]struct{}
	npending  atomic.Int32 // len(pending), read without the lock

	hits, misses, errors, stores atomic.Uint64
}

// ListStats counts the list cache's outcomes since it was created.
type ListStats struct {
	Hits, Misses, Errors, Stores uint64
}

// Stats returns the counters behind strata_l2_cache_*_total.
func (l *Lists) Stats() ListStats {
	return ListStats{Hits: l.hits.Load(), Misses: l.misses.Load(), Errors: l.errors.Load(), Stores: l.stores.Load()}
}

// ListOptions configure a Lists cache.
type ListOptions struct {
	// Prefix of every key (default "strata:"), shared by all nodes.
	Prefix string
	// TTL of a stored page (default 30s): a bound on staleness should a
	// generation bump be lost.
	TTL time.Duration
	// MaxEntryBytes skips pages larger than this (default 256 KiB).
	MaxEntryBytes int
	// Timeout of each Redis round trip (default 20ms).
	Timeout time.Duration
	// Cooldown is how long the cache is bypassed after a Redis error
	// (default 5s), so an outage costs one timeout per cool-down.
	Cooldown time.Duration
	Logger   *slog.Logger
	// Registerer, when set, receives strata_l2_cache_*_total.
	Registerer prometheus.Registerer
}

// NewLists returns a list cache on client.
func NewLists(client redis.UniversalClient, opts ListOptions) *Lists {
	l := &Lists{client: client, prefix: opts.Prefix, ttl: opts.TTL, maxEntryBytes: opts.MaxEntryBytes,
		timeout: opts.Timeout, cooldown: opts.Cooldown, log: opts.Logger, pending: map[string]struct{}{}}
	if l.prefix == "" {
		l.prefix = "strata:"
	}
	if l.ttl <= 0 {
		l.ttl = 30 * time.Second
	}
	if l.maxEntryBytes <= 0 {
		l.maxEntryBytes = 256 << 10
	}
	if l.timeout <= 0 {
		l.timeout = 20 * time.Millisecond
	}
	if l.cooldown <= 0 {
		l.cooldown = 5 * time.Second
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	if opts.Registerer != nil {
		counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "strata", Subsystem: "l2_cache", Name: name, Help: help},
				func() float64 { return float64(v.Load()) })
		}
		opts.Registerer.MustRegister(
			counter("hits_total", "List requests answered from the Redis list cache.", &l.hits),
			counter("misses_total", "Cacheable list requests that went to the store.", &l.misses),
			counter("errors_total", "Redis list cache operations that failed or timed out (the store answered).", &l.errors),
			counter("stores_total", "List pages stored in the Redis list cache.", &l.stores))
	}
	return l
}

// lookupScript reads the generations of KEYS[1..n-1] and the page at
// KEYS[n] atomically. A missing generation (first use, or evicted) is set
// to ARGV[1], a random start: were generations to restart from a known
// value after an eviction, a page stored before it could match again.
var lookupScript = redis.NewScript(`
local out = {}
local n = #KEYS
for i = 1, n - 1 do
  local g = redis.call('GET', KEYS[i])
  if not g then
    g = ARGV[1]
    redis.call('SET', KEYS[i], g)
  end
  out[i] = g
end
out[n] = redis.call('GET', KEYS[n])
return out
`)

// bumpScript advances the generation of every key, starting a missing one
// from the random ARGV[1] (see lookupScript).
var bumpScript = redis.NewScript(`
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('SET', KEYS[i], ARGV[1])
  end
  redis.call('INCR', KEYS[i])
end
return #KEYS
`)

// randomStart is a fresh starting generation: random in [1, 2^52), far
// from overflowing INCR.
func randomStart() string {
	var b [8]byte
	rand.Read(b[:])
	return strconv.FormatUint(binary.LittleEndian.Uint64(b[:])>>12|1, 10)
}

func (l *Lists) genKey(collectionID string) string { return l.prefix + "gen:" + collectionID }

// ListFill is a cache miss the caller may fill: Store the response body
// once it was built from data read on the primary.
type ListFill struct {
	l      *Lists
	key    string
	header string // the generations the lookup saw, as stored before the body
}

// Lookup returns the cached body of q (a hit), or a fill to store the
// body the caller builds (a miss), or neither: q is not cacheable, or
// Redis is unavailable and the caller should just serve from the store.
func (l *Lists) Lookup(ctx context.Context, q ListQuery) (body []byte, fill *ListFill) {
	if time.Now().UnixNano() < l.downUntil.Load() {
		return nil, nil
	}
	k, ok := listKey(q)
	if !ok {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
	defer cancel()
	if !l.flushPending(ctx) {
		return nil, nil
	}
	keys := make([]string, 0, len(k.collections)+1)
	for _, id := range k.collections {
		keys = append(keys, l.genKey(id))
	}
	entry := l.prefix + "list:" + k.hash
	keys = append(keys, entry)
	res, err := lookupScript.Run(ctx, l.client, keys, randomStart()).Slice()
	if err != nil || len(res) != len(keys) {
		l.fail("lookup", err)
		return nil, nil
	}
	var header strings.Builder
	for i, g := range res[:len(res)-1] {
		s, ok := g.(string)
		if !ok {
			l.fail("lookup", nil)
			return nil, nil
		}
		if i > 0 {
			header.WriteByte(',')
		}
		header.WriteString(s)
	}
	header.WriteByte('\n')
	h := header.String()
	if v, ok := res[len(res)-1].(string); ok && strings.HasPrefix(v, h) {
		l.hits.Add(1)
		return []byte(v[len(h):]), nil
	}
	l.misses.Add(1)
	return nil, &ListFill{l: l, key: entry, header: h}
}

// Store saves a 200 response body under the generations its lookup saw:
// if a write bumped one since, the page is already outdated and never
// served. Pages over the size cap are skipped.
func (f *ListFill) Store(ctx context.Context, body []byte) {
	l := f.l
	if len(body) > l.maxEntryBytes || time.Now().UnixNano() < l.downUntil.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
	defer cancel()
	v := make([]byte, 0, len(f.header)+len(body))
	v = append(append(v, f.header...), body...)
	if err := l.client.Set(ctx, f.key, v, l.ttl).Err(); err != nil {
		l.fail("store", err)
		return
	}
	l.stores.Add(1)
}

// Invalidate bumps the generation of every collection changes touch. It
// runs after commit and before the write is answered (through the record
// cache, see Records.SetLists), and again on every node that follows the
// change log, which also covers writers that could not reach Redis.
func (l *Lists) Invalidate(changes []strata.Change) {
	if len(changes) == 0 {
		return
	}
	ids := make([]string, 0, 1)
	for _, ch := range changes {
		if !slices.Contains(ids, ch.CollectionID) {
			ids = append(ids, ch.CollectionID)
		}
	}
	if time.Now().UnixNano() < l.downUntil.Load() {
		// Bumped once Redis is back, before this node uses the cache.
		l.addPending(ids)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	if err := l.bump(ctx, ids); err != nil {
		l.addPending(ids)
		l.fail("invalidate", err)
	}
}

func (l *Lists) bump(ctx context.Context, ids []string) error {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = l.genKey(id)
	}
	return bumpScript.Run(ctx, l.client, keys, randomStart()).Err()
}

func (l *Lists) addPending(ids []string) {
	l.pendingMu.Lock()
	defer l.pendingMu.Unlock()
	for _, id := range ids {
		l.pending[id] = struct{}{}
	}
	l.npending.Store(int32(len(l.pending)))
}

// flushPending bumps the generations whose bump failed earlier, and
// reports whether the cache may be used: not while a bump is outstanding,
// or this node could serve a page older than its own write.
func (l *Lists) flushPending(ctx context.Context) bool {
	if l.npending.Load() == 0 {
		return true
	}
	l.pendingMu.Lock()
	defer l.pendingMu.Unlock()
	if len(l.pending) == 0 {
		return true
	}
	ids := make([]string, 0, len(l.pending))
	for id := range l.pending {
		ids = append(ids, id)
	}
	if err := l.bump(ctx, ids); err != nil {
		l.fail("invalidate", err)
		return false
	}
	clear(l.pending)
	l.npending.Store(0)
	return true
}

// fail counts an error and bypasses the cache for the cool-down.
func (l *Lists) fail(op string, err error) {
	l.errors.Add(1)
	now := time.Now()
	if l.downUntil.Swap(now.Add(l.cooldown).UnixNano()) < now.UnixNano() {
		l.log.Warn("list cache: Redis unavailable, serving lists from the store", "op", op, "err", err, "retry_in", l.cooldown)
	}
}
