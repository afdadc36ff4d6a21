package guard

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Priority orders requests for load shedding: when the node is over its
// concurrency limit, lower priorities are refused first.
type Priority uint8

// Priorities, from the first shed to the never shed.
const (
	// PriorityList is for expensive reads: lists, searches, batches.
	PriorityList Priority = iota
	// PriorityWrite is for creates, updates and deletes.
	PriorityWrite
	// PriorityRead is for cheap reads, mostly served from the cache.
	PriorityRead
	// PriorityCritical is never shed or queued: health and readiness
	// checks, metrics, superusers.
	PriorityCritical
)

var priorityNames = [...]string{"list", "write", "read", "critical"}

// String is the priority's metric label.
func (p Priority) String() string {
	if int(p) < len(priorityNames) {
		return priorityNames[p]
	}
	return "unknown"
}

// share is the fraction of the limit each priority may fill: lists stop
// being admitted first, reads keep the whole limit, so under pressure the
// node keeps serving reads of cached data while it refuses lists.
var share = [PriorityCritical]float64{PriorityList: 0.7, PriorityWrite: 0.85, PriorityRead: 1}

// ConcurrencyOptions configure a Concurrency limiter. Zero values take the
// defaults.
type ConcurrencyOptions struct {
	InitialLimit int           // starting limit (default MinLimit, then doubled while latency allows)
	MinLimit     int           // the limit never drops below (default 4)
	MaxLimit     int           // the limit never grows above (default 1000)
	MaxWait      time.Duration // how long a request may queue (default 50ms; negative: no queue)
	MaxQueue     int           // how many requests may queue at once (default 256)
	// Tolerance is how much slower than its baseline (the lowest recent
	// latency) the node may get before the limit shrinks (default 1.25).
	Tolerance float64
}

// Concurrency is an adaptive concurrency limit for one node, in the style
// of Netflix's gradient limiter with a Vegas-style baseline: it compares the
// recent latency of admitted requests with the lowest latency seen over the
// last half minute, per priority (writes are slower than cached reads
// without anything queueing), shrinks the limit when latency grows (work is
// queueing inside the node) and grows it by about √limit while latency
// stays near the baseline and the limit is in use. A node starts at its
// floor and doubles the limit each window until latency first rises, as
// TCP starts a connection, so that its first baselines are measured with
// little in flight even when it starts under a spike. Requests over the limit
// wait in a short queue, by priority, then are shed; once waiters start
// timing out, or more queue than the node can start within the wait (an
// overload, not a burst), the queue is served newest first and newcomers
// wait a tenth as long for a while, so that the requests the node admits
// stay fast while the others are refused early.
//
// The baseline is a windowed minimum rather than a long-run average because
// an average follows the latency up during a sustained overload and lets
// the limit, and with it the latency, creep up for as long as the overload
// lasts.
//
// Written here rather than taken from failsafe-go: its adaptive limiter
// ranks priorities through a separately calibrated rejection threshold and
// has no class that is never refused, and it puts a generic policy
// executor (allocations included) on every request; what Strata needs is
// ~250 lines with a mutex.
type Concurrency struct {
	opts ConcurrencyOptions
	now  func() time.Time

	mu    sync.Mutex
	limit float64
	// slowStart: the limit doubles each window until latency first
	// leaves its tolerance (as TCP's congestion window does). A node
	// starts at its floor because its first latency windows are its
	// baselines: started high and sent straight into a spike, it would
	// learn overloaded latency as normal and keep it.
	slowStart bool
	inflight  int
	queue     [PriorityCritical][]*waiter
	queued    int

	// An overload episode starts when a queued request waits all of
	// MaxWait and is shed, or when more requests queue than the node
	// can start within MaxWait (a burst drains before that). Until
	// overUntil the node serves its queue newest first: in an overload
	// the oldest waiters will time out anyway, and serving the newest
	// keeps the admitted fast (adaptive LIFO). An episode is not
	// extended by the short waits it sheds: clients that retry at once
	// would keep those timing out, and the node "overloaded", for as
	// long as they retry, although a FIFO queue would serve them all in
	// time. When it ends the queue is FIFO again, which tests whether
	// the overload is still there; an episode that starts within
	// overloadFor of the last one's end lasts twice as long, up to
	// maxOverload, so that a lasting overload is tested rarely.
	overUntil time.Time
	overLen   time.Duration
	// probe is the window count left of a baseline probe (0: none):
	// during an overload the limit keeps the node busy at whatever
	// latency its baseline allows, so a baseline learned too high (a
	// node that started cold, under a flood) is never corrected by
	// what the node sees. After a window in which it shed requests,
	// from nextProbe on, the node runs at its floor for two windows,
	// one to drain and one to measure, as BBR probes for the round-trip
	// time. It does so once, 2 s or more after its start (a node started
	// under a flood is the one whose baseline is most likely wrong),
	// and then every probeEvery only if it sheds without queueing
	// (MaxWait < 0): with a queue, overload episodes keep the baselines
	// from expiring during an overload, and a probe costs a CPU-bound
	// node a little goodput (10× spike: 0.86 against 0.88, 6 pairs of
	// runs); without one, nothing else stops the baseline, and the
	// limit with it, from creeping up under a sustained overload.
	probe     int
	nextProbe time.Time // zero: no more probes
	shedWin   bool      // a request was shed in the current window
	// meanLat is a moving average of the latency of admitted requests
	// (seconds): limit ÷ meanLat is how many requests the node starts
	// per second when it is at its limit.
	meanLat float64

	// gradient state: one window of samples at a time. Each priority
	// has its own baseline, the minimum window average of its requests in
	// the current and previous epochs: a create on PostgreSQL is slower
	// than a cached view without anything queueing, and one baseline for
	// both would read a shift from reads to writes as an overload and
	// shed writes the node can serve.
	baseMin   [PriorityCritical][baseEpochs]float64 // seconds; 0: no sample yet
	baseEpoch time.Time                             // start of baseMin[*][0]'s epoch
	winStart  time.Time
	winSum    [PriorityCritical]float64
	winN      [PriorityCritical]int
	winMaxIn  int
	shedCount [PriorityCritical]prometheus.Counter

	limitGauge, inflightGauge prometheus.GaugeFunc
	shed                      *prometheus.CounterVec
	queueWait                 prometheus.Histogram
}

const (
	// baseEpochs × baseEpoch is how long a latency stays the baseline.
	baseEpochs   = 3
	baseEpochLen = 10 * time.Second
	// overloadFor is how long an overload episode lasts at first, and
	// maxOverload the longest it grows to while the overload lasts.
	overloadFor = time.Second
	maxOverload = 8 * time.Second
	// probeEvery is short enough that each 30 s of baselines holds a
	// probe.
	probeEvery = 20 * time.Second
	// slack is latency the limit tolerates above Tolerance × baseline
	// before it shrinks: with a sub-millisecond baseline, a ratio alone
	// would treat a millisecond of scheduling noise as queueing.
	slack = 2 * time.Millisecond
)

type waiter struct {
	ready   chan struct{}
	granted bool
}

// NewConcurrency returns a limiter with opts.
func NewConcurrency(opts ConcurrencyOptions) *Concurrency {
	if opts.MinLimit <= 0 {
		opts.MinLimit = 4
	}
	if opts.InitialLimit <= 0 {
		opts.InitialLimit = opts.MinLimit
	}
	if opts.MaxLimit <= 0 {
		opts.MaxLimit = 1000
	}
	if opts.MaxLimit < opts.MinLimit {
		opts.MaxLimit = opts.MinLimit
	}
	if opts.MaxWait == 0 {
		opts.MaxWait = 50 * time.Millisecond
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 256
	}
	if opts.Tolerance < 1 {
		opts.Tolerance = 1.25
	}
	c := &Concurrency{opts: opts, now: time.Now, slowStart: true,
		limit: math.Min(math.Max(float64(opts.InitialLimit), float64(opts.MinLimit)), float64(opts.MaxLimit))}
	c.winStart = c.now()
	c.baseEpoch, c.nextProbe = c.winStart, c.winStart.Add(2*time.Second)
	c.limitGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "strata", Subsystem: "guard", Name: "concurrency_limit",
		Help: "The adaptive concurrency limit of this node right now.",
	}, func() float64 { return float64(c.Limit()) })
	c.inflightGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "strata", Subsystem: "guard", Name: "concurrency_in_flight",
		Help: "Requests holding a slot of the concurrency limit (critical ones never do).",
	}, func() float64 { return float64(c.InFlight()) })
	c.shed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "strata", Subsystem: "guard", Name: "shed_total",
		Help: "Requests refused with 503 because the node was over its concurrency limit, by priority.",
	}, []string{"priority"})
	for p := range c.shedCount {
		c.shedCount[p] = c.shed.WithLabelValues(Priority(p).String())
	}
	c.queueWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "strata", Subsystem: "guard", Name: "queue_wait_seconds",
		Help:    "Time requests over the concurrency limit waited in the queue, whether then admitted or shed.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25},
	})
	return c
}

// Collectors are the limiter's metrics, for a prometheus registry.
func (c *Concurrency) Collectors() []prometheus.Collector {
	return []prometheus.Collector{c.limitGauge, c.inflightGauge, c.shed, c.queueWait}
}

// Limit is the current limit.
func (c *Concurrency) Limit() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(c.limit)
}

// InFlight is the number of admitted requests not yet released.
func (c *Concurrency) InFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inflight
}

// Ticket is an admitted request; Release it when the request is done. The
// zero Ticket releases nothing.
type Ticket struct {
	c      *Concurrency
	start  time.Time
	p      Priority
	paused bool // holds no slot until Resume
}

// threshold is how many requests of priority p may be in flight, rounded
// to nearest: at a floor of 4 lists get 3 slots, not 2, and on a CPU-bound
// node with two cores two lists leave a core idle whenever one of them
// writes its response or waits for a connection.
func (c *Concurrency) threshold(p Priority) int {
	limit := c.limit
	if c.probe > 0 {
		limit = float64(c.opts.MinLimit)
	}
	return max(1, int(limit*share[p]+0.5))
}

// waitingAtOrAbove reports whether a request of priority p or higher is
// queued: a newcomer must not overtake it.
func (c *Concurrency) waitingAtOrAbove(p Priority) bool {
	for q := p; q < PriorityCritical; q++ {
		if len(c.queue[q]) > 0 {
			return true
		}
	}
	return false
}

// Acquire admits a request of priority p, waiting up to MaxWait (or until
// ctx ends) when the node is at its limit. It reports false when the
// request is shed.
func (c *Concurrency) Acquire(ctx context.Context, p Priority) (Ticket, bool) {
	if p >= PriorityCritical {
		return Ticket{}, true
	}
	now := c.now()
	c.mu.Lock()
	if c.inflight < c.threshold(p) && !c.waitingAtOrAbove(p) {
		c.inflight++
		c.mu.Unlock()
		return Ticket{c: c, start: now, p: p}, true
	}
	wait := c.opts.MaxWait
	if wait > 0 && !c.overloaded(now) && c.meanLat > 0 && float64(c.queued+1) > c.limit/c.meanLat*wait.Seconds() {
		// More are queued than the node can start within MaxWait: they
		// would time out; do not make them wait for it.
		c.startOverload(now)
	}
	if wait > 0 && c.overloaded(now) {
		// Served newest first, a newcomer that gets no slot soon will
		// not get one: let it go early and free its connection.
		wait /= 10
	}
	if wait < 0 || c.queued >= c.opts.MaxQueue {
		c.shedWin = true
		c.mu.Unlock()
		c.shedCount[p].Inc()
		c.queueWait.Observe(0)
		return Ticket{}, false
	}
	w := &waiter{ready: make(chan struct{})}
	c.queue[p] = append(c.queue[p], w)
	c.queued++
	c.mu.Unlock()

	start := time.Now()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-w.ready:
	case <-timer.C:
	case <-ctx.Done():
	}
	end := c.now()
	c.mu.Lock()
	if !w.granted {
		c.remove(p, w)
		c.shedWin = true
		if ctx.Err() == nil && wait == c.opts.MaxWait && !c.overloaded(end) {
			c.startOverload(end)
		}
	}
	c.mu.Unlock()
	c.queueWait.Observe(time.Since(start).Seconds())
	if !w.granted {
		c.shedCount[p].Inc()
		return Ticket{}, false
	}
	return Ticket{c: c, start: end, p: p}, true
}

func (c *Concurrency) remove(p Priority, w *waiter) {
	q := c.queue[p]
	for i, x := range q {
		if x == w {
			copy(q[i:], q[i+1:])
			q[len(q)-1] = nil
			c.queue[p] = q[:len(q)-1]
			c.queued--
			return
		}
	}
}

// Release gives the slot back, feeds the request's latency to the limit and
// hands free slots to queued requests, highest priority first.
func (t Ticket) Release() {
	c := t.c
	if c == nil || t.paused {
		return
	}
	now := c.now()
	c.mu.Lock()
	c.sample(now, now.Sub(t.start), t.p)
	c.inflight--
	c.dispatch()
	c.mu.Unlock()
}

// Pause gives the slot back while the request waits on its client, not on
// this node (a request body still arriving), so that a few clients sending
// slowly cannot hold every slot. The wait is not fed to the limit: it says
// nothing about the node's load. Resume takes a slot again.
func (t *Ticket) Pause() {
	c := t.c
	if c == nil || t.paused {
		return
	}
	c.mu.Lock()
	c.inflight--
	c.dispatch()
	c.mu.Unlock()
	*t = Ticket{c: c, p: t.p, paused: true}
}

// Resume takes a slot again after Pause, queueing like Acquire; it reports
// false when the request is shed, and then the Ticket holds nothing. On a
// Ticket that is not paused it does nothing and reports true.
func (t *Ticket) Resume(ctx context.Context) bool {
	if !t.paused {
		return true
	}
	nt, ok := t.c.Acquire(ctx, t.p)
	*t = nt
	return ok
}

// overloaded reports whether an overload episode is on.
func (c *Concurrency) overloaded(now time.Time) bool {
	return now.Before(c.overUntil)
}

// startOverload starts an overload episode, twice as long as the last if
// that one ended less than overloadFor ago.
func (c *Concurrency) startOverload(now time.Time) {
	if c.overUntil.IsZero() || now.Sub(c.overUntil) > overloadFor {
		c.overLen = overloadFor
	} else {
		c.overLen = min(2*c.overLen, maxOverload)
	}
	c.overUntil = now.Add(c.overLen)
}

// dispatch admits queued requests while there is room for them, newest
// first during an overload episode.
func (c *Concurrency) dispatch() {
	lifo := c.overloaded(c.now())
	for p := PriorityCritical - 1; ; p-- {
		for len(c.queue[p]) > 0 && c.inflight < c.threshold(p) {
			q := c.queue[p]
			var w *waiter
			if lifo {
				w = q[len(q)-1]
				q[len(q)-1] = nil
				c.queue[p] = q[:len(q)-1]
			} else {
				w = q[0]
				q[0] = nil
				c.queue[p] = q[1:]
			}
			c.queued--
			w.granted = true
			c.inflight++
			close(w.ready)
		}
		if p == 0 {
			return
		}
	}
}

// minClassSamples is how many requests of a priority a window needs before
// their average may lower that priority's baseline: the average of one or
// two requests is noise.
const minClassSamples = 4

// sample adds one latency to the current window and, when the window is
// full, moves the limit (the gradient step).
func (c *Concurrency) sample(now time.Time, rtt time.Duration, p Priority) {
	c.winSum[p] += rtt.Seconds()
	c.winN[p]++
	c.winMaxIn = max(c.winMaxIn, c.inflight)
	n := 0
	for _, k := range c.winN {
		n += k
	}
	if n < 64 && (n < 8 || now.Sub(c.winStart) < 100*time.Millisecond) {
		return
	}
	sums, counts, maxIn, shed := c.winSum, c.winN, c.winMaxIn, c.shedWin
	c.winStart, c.winSum, c.winN, c.winMaxIn, c.shedWin = now, [PriorityCritical]float64{}, [PriorityCritical]int{}, 0, false
	var sum float64
	for _, v := range sums {
		sum += v
	}
	if c.meanLat == 0 {
		c.meanLat = sum / float64(n)
	} else {
		c.meanLat = 0.7*c.meanLat + 0.3*sum/float64(n)
	}
	switch n := int(now.Sub(c.baseEpoch) / baseEpochLen); {
	case n > 0 && c.overloaded(now):
		// An overload must not become the new normal: during an
		// episode the baselines keep what they saw before.
		c.baseEpoch = now
	case n >= baseEpochs:
		c.baseMin, c.baseEpoch = [PriorityCritical][baseEpochs]float64{}, now
	case n > 0:
		for q := range c.baseMin {
			copy(c.baseMin[q][n:], c.baseMin[q][:baseEpochs-n])
			clear(c.baseMin[q][:n])
		}
		c.baseEpoch = c.baseEpoch.Add(time.Duration(n) * baseEpochLen)
	}
	// Each priority's latency against its own baseline, weighted by how
	// many requests it had in the window.
	var weighted float64
	var total int
	for q := range counts {
		if counts[q] == 0 {
			continue
		}
		short := sums[q] / float64(counts[q])
		if short <= 0 {
			continue
		}
		base := c.baseMin[q]
		if counts[q] >= minClassSamples && (base[0] == 0 || short < base[0]) {
			c.baseMin[q][0] = short
		}
		b := short
		for _, m := range c.baseMin[q] {
			if m > 0 {
				b = math.Min(b, m)
			}
		}
		g := math.Max(0.5, math.Min(1, (c.opts.Tolerance*b+slack.Seconds())/short))
		weighted += g * float64(counts[q])
		total += counts[q]
	}
	switch {
	case c.probe > 0:
		// A probe window: its latency is the floor's, not the limit's.
		if c.probe--; c.probe == 0 {
			c.nextProbe = time.Time{} // never again
			if c.opts.MaxWait < 0 {
				c.nextProbe = now.Add(probeEvery)
			}
			c.dispatch()
		}
		return
	case shed && !c.nextProbe.IsZero() && !now.Before(c.nextProbe) && c.limit >= 1.5*float64(c.opts.MinLimit):
		c.probe = 2
		return
	}
	// A node using less than half its limit says nothing about whether a
	// larger one would be safe.
	if total == 0 || float64(maxIn) < c.limit/2 {
		return
	}
	gradient := weighted / float64(total)
	switch {
	case c.slowStart && gradient >= 1:
		c.limit = math.Min(float64(c.opts.MaxLimit), 2*c.limit)
		c.dispatch()
		return
	case c.slowStart:
		// The last doubling went too far: back to the limit that
		// kept latency within tolerance, then move by the gradient.
		c.slowStart = false
		c.limit = math.Max(float64(c.opts.MinLimit), c.limit/2)
		return
	}
	next := c.limit * gradient
	if gradient >= 1 {
		// Room to grow only while latency is within tolerance: a
		// standing allowance of √limit (Netflix's gradient2) would
		// settle where latency is limit/(limit-√limit) times the
		// tolerated one, 1.6 times at the single-digit limits of a
		// CPU-bound node on two cores.
		next += math.Sqrt(c.limit)
	}
	next = c.limit*0.8 + next*0.2
	c.limit = math.Max(float64(c.opts.MinLimit), math.Min(float64(c.opts.MaxLimit), next))
	// A larger limit may admit queued requests.
	c.dispatch()
}
