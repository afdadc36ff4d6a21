// Package cache is Strata's per-node L1 cache of records, bounded in memory
// and invalidated by the change stream (a node's own writes at once, other
// writers through the change log). Built on otter, a maintained
// S3-FIFO cache: hot records stay, one-off reads are evicted first.
package cache

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-run/strata"
)

type key struct{ collection, id string }

// Records implements strata.RecordCache.
type Records struct {
	c *otter.Cache[key, *strata.Record]
	// mu orders fills against invalidations: Fill checks the generation
	// and stores under the read lock; Invalidate bumps it under the write
	// lock, so a fill can never land after the invalidation it raced with.
	mu  sync.RWMutex
	gen atomic.Uint64

	opts Options // as applied, defaults filled in

	// lists, when set, is the shared list cache: every invalidation is
	// passed on to it, since every committed write reaches the cache.
	lists atomic.Pointer[Lists]
}

var _ strata.RecordCache = (*Records)(nil)

// Options bound the cache.
type Options struct {
	// MaxBytes is the approximate memory budget (default 64 MiB).
	MaxBytes uint64
	// TTL is a safety net: an entry older than this is reloaded even if
	// no invalidation reached this node (default 5 minutes).
	TTL time.Duration
	// Registerer, when set, receives the cache's metrics: hits, misses,
	// evictions and size.
	Registerer prometheus.Registerer
}

// New returns an empty record cache.
func New(opts Options) *Records {
	if opts.MaxBytes == 0 {
		opts.MaxBytes = 64 << 20
	}
	if opts.TTL == 0 {
		opts.TTL = 5 * time.Minute
	}
	// otter's striped counters cost next to nothing per Get; the metrics
	// below read them only when scraped.
	st := stats.NewCounter()
	r := &Records{opts: opts, c: otter.Must(&otter.Options[key, *strata.Record]{
		MaximumWeight:    opts.MaxBytes,
		Weigher:          weigh,
		ExpiryCalculator: otter.ExpiryWriting[key, *strata.Record](opts.TTL),
		StatsRecorder:    st,
	})}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(newMetrics(r, st)...)
	}
	return r
}

// Budget is the memory budget and TTL the cache runs with.
func (r *Records) Budget() (maxBytes uint64, ttl time.Duration) { return r.opts.MaxBytes, r.opts.TTL }

// newMetrics declares the cache's metrics as functions over otter's
// counters, so they add nothing to the read path.
func newMetrics(r *Records, st *stats.Counter) []prometheus.Collector {
	counter := func(name, help string, f func(stats.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "strata", Subsystem: "cache", Name: name, Help: help,
			ConstLabels: prometheus.Labels{"cache": "records"},
		}, func() float64 { return float64(f(st.Snapshot())) })
	}
	return []prometheus.Collector{
		counter("hits_total", "Record cache look-ups that found the record.", func(s stats.Stats) uint64 { return s.Hits }),
		counter("misses_total", "Record cache look-ups that went to the store.", func(s stats.Stats) uint64 { return s.Misses }),
		counter("evictions_total", "Records evicted to stay within the memory budget.", func(s stats.Stats) uint64 { return s.Evictions }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "strata", Subsystem: "cache", Name: "entries",
			Help:        "Records currently cached (estimate).",
			ConstLabels: prometheus.Labels{"cache": "records"},
		}, func() float64 { return float64(r.Len()) }),
	}
}

// weigh estimates a record's memory: its values plus per-field overhead.
func weigh(k key, r *strata.Record) uint32 {
	n := 64 + len(k.collection) + len(k.id)
	for name, v := range r.Data {
		n += 32 + len(name)
		switch x := v.(type) {
		case string:
			n += len(x)
		case []string:
			for _, s := range x {
				n += 16 + len(s)
			}
		case nil, bool, float64:
		default:
			n += 256 // decoded JSON: a rough guess
		}
	}
	return uint32(min(n, 1<<30))
}

// Get implements strata.RecordCache.
func (r *Records) Get(collectionID, id string) (*strata.Record, bool) {
	return r.c.GetIfPresent(key{collectionID, id})
}

// Generation implements strata.RecordCache.
func (r *Records) Generation() uint64 { return r.gen.Load() }

// Fill implements strata.RecordCache.
func (r *Records) Fill(collectionID, id string, rec *strata.Record, gen uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.gen.Load() != gen {
		return
	}
	r.c.Set(key{collectionID, id}, rec)
}

// Invalidate implements strata.RecordCache.
func (r *Records) Invalidate(changes []strata.Change) {
	if len(changes) == 0 {
		return
	}
	r.mu.Lock()
	r.gen.Add(1)
	for _, ch := range changes {
		r.c.Invalidate(key{ch.CollectionID, ch.RecordID})
	}
	r.mu.Unlock()
	if l := r.lists.Load(); l != nil {
		l.Invalidate(changes)
	}
}

// Purge implements strata.RecordCache.
func (r *Records) Purge() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen.Add(1)
	r.c.InvalidateAll()
}

// SetLists chains the shared list cache to this one: the service layer
// invalidates the record cache after every commit, before answering, and
// for every change it follows from the change log, which is exactly when
// list generations must advance too. Purge (schema changes) needs no
// counterpart: collection definitions are part of every list key.
func (r *Records) SetLists(l *Lists) { r.lists.Store(l) }

// Lists returns the chained list cache (nil: none).
func (r *Records) Lists() *Lists { return r.lists.Load() }

// Len is the number of cached records (for tests and metrics).
func (r *Records) Len() int { return r.c.EstimatedSize() }
