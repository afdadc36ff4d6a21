package guard

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func fixedLimit(n int, wait time.Duration) *Concurrency {
	return NewConcurrency(ConcurrencyOptions{InitialLimit: n, MinLimit: n, MaxLimit: n, MaxWait: wait})
}

func TestConcurrencyShedsListsBeforeWritesBeforeReads(t *testing.T) {
	c := fixedLimit(10, -1) // no queue: over the share is shed at once
	ctx := context.Background()
	var held []Ticket
	take := func(p Priority, want bool) {
		t.Helper()
		tk, ok := c.Acquire(ctx, p)
		if ok != want {
			t.Fatalf("%v with %d in flight: admitted=%v, want %v", p, c.InFlight(), ok, want)
		}
		if ok {
			held = append(held, tk)
		}
	}
	for range 7 {
		take(PriorityList, true)
	}
	take(PriorityList, false) // lists may fill 70%
	take(PriorityWrite, true)
	take(PriorityWrite, true)
	take(PriorityWrite, false) // writes 85%, rounded to nearest
	take(PriorityRead, true)
	take(PriorityRead, false) // reads the whole limit
	for range 100 {
		take(PriorityCritical, true) // never shed, never counted
	}
	if got := c.InFlight(); got != 10 {
		t.Fatalf("in flight %d, want 10 (critical requests take no slot)", got)
	}
	if n := testutil.ToFloat64(c.shedCount[PriorityList]); n != 1 {
		t.Fatalf("shed lists = %v", n)
	}
	for _, tk := range held {
		tk.Release()
	}
	if got := c.InFlight(); got != 0 {
		t.Fatalf("in flight after release %d", got)
	}
}

func TestConcurrencyQueueServesHigherPriorityFirst(t *testing.T) {
	c := fixedLimit(2, 5*time.Second)
	ctx := context.Background()
	a, _ := c.Acquire(ctx, PriorityRead)
	b, _ := c.Acquire(ctx, PriorityRead)

	var mu sync.Mutex
	var order []Priority
	var wg sync.WaitGroup
	enqueue := func(p Priority) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk, ok := c.Acquire(ctx, p)
			if !ok {
				t.Errorf("%v shed while queued for 5s", p)
				return
			}
			mu.Lock()
			order = append(order, p)
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			tk.Release()
		}()
	}
	waitQueued := func(n int) {
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			c.mu.Lock()
			q := c.queued
			c.mu.Unlock()
			if q == n {
				return
			}
		}
		t.Fatalf("queue never reached %d", n)
	}
	// The list arrives first, the read second; the read is served first.
	enqueue(PriorityList)
	waitQueued(1)
	enqueue(PriorityWrite)
	waitQueued(2)
	enqueue(PriorityRead)
	waitQueued(3)
	// One slot frees: the read takes it. (Freeing both at once would let
	// the write in alongside it, in either order.)
	a.Release()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		mu.Lock()
		n := len(order)
		mu.Unlock()
		if n > 0 {
			break
		}
	}
	b.Release()
	wg.Wait()
	want := []Priority{PriorityRead, PriorityWrite, PriorityList}
	for i := range want {
		if i >= len(order) || order[i] != want[i] {
			t.Fatalf("served %v, want %v", order, want)
		}
	}
}

func TestConcurrencyQueueIsBounded(t *testing.T) {
	c := fixedLimit(1, 30*time.Millisecond)
	ctx := context.Background()
	held, _ := c.Acquire(ctx, PriorityRead)
	start := time.Now()
	if _, ok := c.Acquire(ctx, PriorityRead); ok {
		t.Fatal("admitted over the limit")
	}
	if el := time.Since(start); el < 25*time.Millisecond || el > time.Second {
		t.Fatalf("shed after %v, want after the 30ms queue", el)
	}
	// A cancelled request leaves the queue at once.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok := c.Acquire(cctx, PriorityWrite); ok {
		t.Fatal("cancelled request admitted")
	}
	// Health checks and superusers pass regardless.
	if _, ok := c.Acquire(ctx, PriorityCritical); !ok {
		t.Fatal("critical request shed")
	}
	if n := testutil.CollectAndCount(c.queueWait); n != 1 {
		t.Fatalf("queue wait histogram series = %d", n)
	}
	held.Release()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.queued != 0 || len(c.queue[PriorityRead]) != 0 || len(c.queue[PriorityWrite]) != 0 {
		t.Fatalf("queue left with %d waiters", c.queued)
	}
}

func TestConcurrencyLimitFollowsLatency(t *testing.T) {
	c := NewConcurrency(ConcurrencyOptions{InitialLimit: 20, MinLimit: 4, MaxLimit: 200, MaxWait: -1})
	load := newRounds(c)
	round := func(rtt time.Duration) { load.round(PriorityRead, rtt) }
	for range 40 {
		round(time.Millisecond)
	}
	grown := c.Limit()
	if grown <= 40 {
		t.Fatalf("limit %d after steady fast rounds, want it grown from 20", grown)
	}
	// Latency jumps tenfold: work is queueing inside the node.
	for range 20 {
		round(10 * time.Millisecond)
	}
	if shrunk := c.Limit(); shrunk >= grown*2/3 {
		t.Fatalf("limit %d after latency rose, want well below %d", shrunk, grown)
	}
	// Latency keeps climbing: the limit shrinks toward its floor, never below.
	rtt := 10 * time.Millisecond
	for range 40 {
		rtt = rtt * 3 / 2
		round(rtt)
	}
	if l := c.Limit(); l < 4 || l > 8 {
		t.Fatalf("limit %d while latency kept climbing, want near the minimum 4", l)
	}
	// Latency recovers: so does the limit.
	low := c.Limit()
	for range 60 {
		round(time.Millisecond)
	}
	if c.Limit() <= low {
		t.Fatalf("limit stuck at %d after latency recovered", c.Limit())
	}
}

func TestConcurrencyIdleDoesNotGrow(t *testing.T) {
	c := NewConcurrency(ConcurrencyOptions{InitialLimit: 50, MaxWait: -1})
	for range 1000 {
		tk, _ := c.Acquire(context.Background(), PriorityRead)
		tk.Release()
	}
	if c.Limit() != 50 {
		t.Fatalf("limit moved to %d with one request in flight at a time", c.Limit())
	}
}

func TestHugeMaxIsNoLimit(t *testing.T) {
	// maxRequests above the window's resolution once divided by zero.
	l := NewLocal()
	for range 3 {
		if d := l.Allow(context.Background(), "k", 1<<30, time.Second); !d.Allowed {
			t.Fatalf("refused: %+v", d)
		}
	}
	r := NewRedis(redisClient(t), RedisOptions{})
	if d := r.Allow(context.Background(), "k", 1<<30, time.Millisecond); !d.Allowed {
		t.Fatalf("Redis refused: %+v", d)
	}
}

// A node whose latency grows with the work in flight (4 requests at a time
// at 1 ms each, queueing beyond that) under a load that always fills the
// limit: the limit must settle and stay near where latency starts to grow,
// however long the overload lasts. (It never sees the 1 ms of an idle node,
// only the 2 ms of its first window at the initial limit of 8.) A limiter
// that compares latency with its own long-run average lets both creep up
// to MaxLimit instead.
func TestConcurrencySustainedOverloadDoesNotCreep(t *testing.T) {
	c := NewConcurrency(ConcurrencyOptions{InitialLimit: 8, MinLimit: 2, MaxLimit: 1000, MaxWait: -1})
	lat := newRounds(c).overload(3000, func(_, n int) time.Duration { return cpuBound(n, 4) }) // five simulated minutes
	worst := slices.Max(lat[301:])
	if l := c.Limit(); l > 32 {
		t.Fatalf("limit crept to %d under a sustained overload; the node runs 4 at a time", l)
	}
	if worst > 8*time.Millisecond {
		t.Fatalf("latency reached %v under a sustained overload; unloaded it is 1ms", worst)
	}
}

// Once a waiter has timed out (an overload, not a burst), the queue is
// served newest first: the oldest waiters would time out anyway, and the
// newest can still be answered fast.
func TestConcurrencyOverloadServesNewestFirst(t *testing.T) {
	c := fixedLimit(1, 2*time.Second)
	clock := time.Unix(0, 0)
	c.now = func() time.Time { return clock }
	ctx := context.Background()
	held, _ := c.Acquire(ctx, PriorityRead)
	if _, ok := c.Acquire(ctx, PriorityRead); ok {
		t.Fatal("admitted over a full limit")
	}
	type result struct {
		name string
		tk   Ticket
	}
	got := make(chan result, 2)
	for _, name := range []string{"older", "newer"} {
		go func() {
			tk, ok := c.Acquire(ctx, PriorityRead)
			if !ok {
				t.Errorf("%s shed", name)
			}
			got <- result{name, tk}
		}()
		for n := c.queuedLen(); n == 0 || (name == "newer" && n == 1); n = c.queuedLen() {
			time.Sleep(time.Millisecond)
		}
	}
	held.Release()
	first := <-got
	if first.name != "newer" {
		t.Fatalf("%s waiter served first during an overload, want the newer", first.name)
	}
	first.tk.Release()
	(<-got).tk.Release()
}

// A queue that never empties but keeps letting requests through quickly is
// a steady stream being absorbed, not an overload: newcomers still queue.
func TestConcurrencyMovingQueueStillQueues(t *testing.T) {
	c := fixedLimit(1, time.Hour)
	clock := time.Unix(0, 0)
	var mu sync.Mutex
	c.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	ctx := context.Background()
	holder, _ := c.Acquire(ctx, PriorityRead)
	got := make(chan Ticket, 1)
	enqueue := func() {
		go func() {
			tk, ok := c.Acquire(ctx, PriorityRead)
			if !ok {
				t.Error("shed from a moving queue")
			}
			got <- tk
		}()
		for c.queuedLen() == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	enqueue()
	// 300 ms with someone always queued, each getting the slot after 1 ms.
	for range 300 {
		mu.Lock()
		clock = clock.Add(time.Millisecond)
		mu.Unlock()
		holder.Release()
		holder = <-got
		enqueue()
	}
	holder.Release()
	(<-got).Release()
}

func (c *Concurrency) queuedLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queued
}

// A node that served cached reads at 1 ms starts taking writes that cost
// 8 ms each however few run at once: nothing is queueing, so the limit must
// not shrink (one baseline for both would read 8 ms as an eightfold
// overload and shed writes the node can serve). Once the writes do start
// queueing, it must.
func TestConcurrencyWorkloadShiftIsNotOverload(t *testing.T) {
	c := NewConcurrency(ConcurrencyOptions{InitialLimit: 40, MinLimit: 4, MaxLimit: 200, MaxWait: -1})
	round := newRounds(c).round
	for range 30 {
		round(PriorityRead, time.Millisecond)
	}
	before := c.Limit()
	for range 30 {
		round(PriorityWrite, 8*time.Millisecond)
	}
	if after := c.Limit(); after < before {
		t.Fatalf("limit fell from %d to %d when reads gave way to slower writes that do not queue", before, after)
	}
	grown := c.Limit()
	for range 20 {
		round(PriorityWrite, 40*time.Millisecond)
	}
	if l := c.Limit(); l >= grown*2/3 {
		t.Fatalf("limit %d after write latency rose fivefold, want well below %d", l, grown)
	}
}

// rounds drives a limiter on a fake clock: each round admits as many
// requests as the limit takes, all at once, and releases them together.
type rounds struct {
	c     *Concurrency
	clock time.Time
}

func newRounds(c *Concurrency) *rounds {
	r := &rounds{c: c, clock: time.Unix(0, 0)}
	c.now = func() time.Time { return r.clock }
	// Restart the limiter's timekeeping on the fake clock.
	c.winStart, c.baseEpoch, c.nextProbe = r.clock, r.clock, r.clock.Add(2*time.Second)
	return r
}

// admit acquires tickets of priority p until the limiter refuses one.
func (r *rounds) admit(p Priority) []Ticket {
	var ts []Ticket
	for {
		tk, ok := r.c.Acquire(context.Background(), p)
		if !ok {
			return ts
		}
		ts = append(ts, tk)
	}
}

// finish releases ts rtt after they were admitted, then idles 100 ms.
func (r *rounds) finish(ts []Ticket, rtt time.Duration) {
	r.clock = r.clock.Add(rtt)
	for _, tk := range ts {
		tk.Release()
	}
	r.clock = r.clock.Add(100 * time.Millisecond)
}

// round runs the limit's worth of requests of priority p, each taking rtt.
func (r *rounds) round(p Priority, rtt time.Duration) { r.finish(r.admit(p), rtt) }

// overload runs n rounds of reads that always fill the limit, each taking
// rtt(round, requests admitted), and returns each round's latency.
func (r *rounds) overload(n int, rtt func(round, inFlight int) time.Duration) []time.Duration {
	lat := make([]time.Duration, n)
	for i := range n {
		ts := r.admit(PriorityRead)
		lat[i] = rtt(i, len(ts))
		r.finish(ts, lat[i])
	}
	return lat
}

func meanOf(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

// cpuBound is a node with cores cores and a 1 ms request: latency grows
// with the work in flight beyond the cores.
func cpuBound(inFlight, cores int) time.Duration {
	return time.Duration(max(1, float64(inFlight)/float64(cores)) * float64(time.Millisecond))
}

// A fresh node sent straight into a load that always fills its limit (an
// autoscaled node joins exactly when load is high) must still learn what
// its latency is unloaded: started at 32 its first window would measure
// 8 ms on four cores, take that for normal and keep 32 or more in flight
// for good.
func TestConcurrencyColdStartIntoOverload(t *testing.T) {
	c := NewConcurrency(ConcurrencyOptions{MaxWait: -1})
	lat := newRounds(c).overload(600, func(_, n int) time.Duration { return cpuBound(n, 4) })
	worst := slices.Max(lat[101:])
	if l := c.Limit(); l > 16 {
		t.Fatalf("limit %d after a cold start into overload; four cores run 4 at a time", l)
	}
	if worst > 5*time.Millisecond {
		t.Fatalf("latency reached %v after a cold start into overload; unloaded it is 1ms", worst)
	}
}

// Under a load that always fills the limit, latency must settle within
// the tolerance (1.25 × 1 ms + 2 ms slack here), not above it: a limiter
// that keeps growing by √limit while latency is already over tolerance
// settles where the shrinking and the growth cancel, a third higher.
func TestConcurrencySettlesWithinTolerance(t *testing.T) {
	c := NewConcurrency(ConcurrencyOptions{InitialLimit: 2, MinLimit: 2, MaxWait: -1})
	lat := newRounds(c).overload(3000, func(_, n int) time.Duration { return cpuBound(n, 4) })
	if mean, tolerated := meanOf(lat[500:]), 3250*time.Microsecond; mean > tolerated*23/20 {
		t.Fatalf("mean latency %v under a sustained overload, want near the tolerated %v", mean, tolerated)
	}
}

// Clients that retry a 503 at once (a closed loop: wrk, a retrying SDK)
// must not keep the node in overload after a stall has passed. A stall
// times waiters out and starts an overload episode; from then on each
// refused client comes straight back, and if the short waits of the
// episode could extend it, their timeouts would keep it going for as long
// as the clients retry, although a FIFO queue serves them all in time (10
// clients, 2 slots of 2 ms: 10 ms, against 100 ms of MaxWait).
func TestConcurrencyRetryingClientsDoNotSustainOverload(t *testing.T) {
	c := fixedLimit(2, 100*time.Millisecond)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	start := time.Now()
	// The stall: both slots held for 300 ms.
	a, _ := c.Acquire(ctx, PriorityRead)
	b, _ := c.Acquire(ctx, PriorityRead)
	time.AfterFunc(300*time.Millisecond, func() { a.Release(); b.Release() })

	var early, late atomic.Int64 // refusals in the first second, and from 2 s on
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for ctx.Err() == nil {
				tk, ok := c.Acquire(ctx, PriorityRead)
				if !ok {
					if ctx.Err() != nil {
						return // the test is over
					}
					switch since := time.Since(start); {
					case since < time.Second:
						early.Add(1)
					case since > 2*time.Second:
						late.Add(1)
					}
					continue
				}
				time.Sleep(2 * time.Millisecond)
				tk.Release()
			}
		})
	}
	time.Sleep(3 * time.Second)
	stop()
	wg.Wait()
	if early.Load() == 0 {
		t.Fatal("nothing refused during and after the stall: the test did not start an overload")
	}
	if n := late.Load(); n > 0 {
		t.Fatalf("%d requests refused 2-3 s after a 300 ms stall, with a queue that drains in 10 ms", n)
	}
}

// A node whose first seconds are slow (cold caches, a flood at start) must
// not keep their latency as its baseline for good: the limit keeps it busy
// at whatever latency the baseline allows, so only a probe at the floor
// can show it that it got faster.
func TestConcurrencyRelearnsBaselineUnderOverload(t *testing.T) {
	c := NewConcurrency(ConcurrencyOptions{MaxWait: -1})
	lat := newRounds(c).overload(1200, func(round, n int) time.Duration { // about two simulated minutes
		if round < 30 {
			return 3 * cpuBound(n, 4) // cold
		}
		return cpuBound(n, 4)
	})
	if mean, tolerated := meanOf(lat[1000:]), 3250*time.Microsecond; mean > tolerated*23/20 {
		t.Fatalf("mean latency %v long after a cold start, want near the %v tolerated over the warm 1ms", mean, tolerated)
	}
}

func TestTicketPauseAndResume(t *testing.T) {
	c := fixedLimit(1, 20*time.Millisecond)
	ctx := context.Background()
	tk, _ := c.Acquire(ctx, PriorityWrite)
	tk.Pause()
	if got := c.InFlight(); got != 0 {
		t.Fatalf("in flight %d while paused", got)
	}
	other, ok := c.Acquire(ctx, PriorityRead)
	if !ok {
		t.Fatal("the paused slot was not free")
	}
	// The slot is taken: resuming queues, then is shed.
	if tk.Resume(ctx) {
		t.Fatal("resumed over the limit")
	}
	tk.Release() // holds nothing
	if got := c.InFlight(); got != 1 {
		t.Fatalf("in flight %d, want 1", got)
	}
	other.Release()

	tk, _ = c.Acquire(ctx, PriorityWrite)
	tk.Pause()
	tk.Pause() // no slot to give back twice
	if !tk.Resume(ctx) {
		t.Fatal("resume on a free slot refused")
	}
	if !tk.Resume(ctx) || c.InFlight() != 1 { // resuming a held ticket takes no second slot
		t.Fatalf("second resume: in flight %d", c.InFlight())
	}
	tk.Release()
	if got := c.InFlight(); got != 0 {
		t.Fatalf("in flight %d after release", got)
	}

	// Pausing hands the slot to a queued request.
	c = fixedLimit(1, 5*time.Second)
	tk, _ = c.Acquire(ctx, PriorityWrite)
	got := make(chan bool)
	go func() {
		w, ok := c.Acquire(ctx, PriorityRead)
		got <- ok
		w.Release()
	}()
	for c.queuedLen() == 0 {
		time.Sleep(time.Millisecond)
	}
	tk.Pause()
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("queued request shed")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the queued request did not get the paused slot")
	}
	if !tk.Resume(ctx) {
		t.Fatal("resume after the other request left")
	}
	tk.Release()
}
