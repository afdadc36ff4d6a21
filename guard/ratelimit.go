// Package guard protects a node from too much traffic: rate limits per
// client (locally, or shared across nodes through Redis) and, later,
// adaptive concurrency limits.
//
// Rate limits use GCRA (the generic cell rate algorithm): one timestamp per
// key (the theoretical arrival time, TAT), no background refills, exact
// Retry-After values, and the same arithmetic in memory and in a Redis
// script, so a node that falls back from Redis to local limits keeps the
// same semantics.
package guard

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Decision is the outcome of one rate-limit check.
type Decision struct {
	Allowed bool
	// Remaining is how many more requests the key may send right now.
	Remaining int
	// RetryAfter is how long to wait before the next request can pass
	// (0 when allowed).
	RetryAfter time.Duration
	// Reset is when the key's budget is fully restored.
	Reset time.Duration
}

// Limiter checks a key against "max requests per window".
type Limiter interface {
	Allow(ctx context.Context, key string, max int, window time.Duration) Decision
}

// gcra applies one request at now to a key whose TAT is tat and returns the
// decision and the new TAT (unchanged when refused). A key may burst up to
// max requests, then gets one every window/max.
func gcra(now, tat time.Time, max int, window time.Duration) (Decision, time.Time) {
	if max <= 0 || window <= 0 {
		return Decision{Allowed: true, Remaining: 0}, tat
	}
	interval := window / time.Duration(max)
	if interval <= 0 {
		// More requests than nanoseconds in the window: no real limit.
		return Decision{Allowed: true, Remaining: max - 1}, tat
	}
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(interval)
	ahead := next.Sub(now) // how far the key's schedule runs ahead of now
	if ahead > window {
		return Decision{RetryAfter: ahead - window, Reset: tat.Sub(now)}, tat
	}
	return Decision{Allowed: true, Remaining: int((window - ahead) / interval), Reset: ahead}, next
}

// Local is an in-memory Limiter for one node. Keys live in shards with
// their own locks; a key whose TAT has passed carries no state and is
// dropped by the periodic sweep, so memory follows the set of recently
// limited clients, not everyone ever seen. MaxKeys bounds it regardless.
type Local struct {
	shards [64]localShard
	seed   maphash.Seed
	now    func() time.Time
	// MaxKeys bounds the number of tracked keys per shard ×64 (default
	// 1<<20 in total); beyond it, the oldest schedules are dropped first,
	// which only ever lets a client through early, never blocks it.
	maxPerShard int
}

type localShard struct {
	mu    sync.Mutex
	tats  map[string]time.Time
	sweep time.Time
}

// NewLocal returns an empty in-memory limiter.
func NewLocal() *Local {
	l := &Local{seed: maphash.MakeSeed(), now: time.Now, maxPerShard: (1 << 20) / 64}
	for i := range l.shards {
		l.shards[i].tats = map[string]time.Time{}
	}
	return l
}

// Allow implements Limiter.
func (l *Local) Allow(_ context.Context, key string, max int, window time.Duration) Decision {
	now := l.now()
	sh := &l.shards[maphash.String(l.seed, key)%uint64(len(l.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if now.Sub(sh.sweep) > time.Minute || len(sh.tats) >= l.maxPerShard {
		sh.evict(now, l.maxPerShard)
	}
	d, tat := gcra(now, sh.tats[key], max, window)
	if d.Allowed {
		sh.tats[key] = tat
	}
	return d
}

// evict drops keys whose schedule has passed; if the shard is still full it
// drops the keys closest to passing.
func (sh *localShard) evict(now time.Time, limit int) {
	sh.sweep = now
	for k, tat := range sh.tats {
		if !tat.After(now) {
			delete(sh.tats, k)
		}
	}
	for len(sh.tats) >= limit {
		var oldestKey string
		var oldest time.Time
		for k, tat := range sh.tats {
			if oldestKey == "" || tat.Before(oldest) {
				oldestKey, oldest = k, tat
			}
		}
		delete(sh.tats, oldestKey)
	}
}

// Len is the number of keys currently tracked (tests, metrics).
func (l *Local) Len() int {
	n := 0
	for i := range l.shards {
		l.shards[i].mu.Lock()
		n += len(l.shards[i].tats)
		l.shards[i].mu.Unlock()
	}
	return n
}
