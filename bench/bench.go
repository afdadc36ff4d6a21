// Package bench is the load generator behind `strata bench`: built-in
// scenarios against any Strata or PocketBase URL, in closed-loop (fixed
// concurrency) or open-loop (constant rate, latency measured from each
// request's due time) mode, with HDR latency histograms, a JSON result, an
// HTML report and a comparison of two results.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Config is one benchmark run.
type Config struct {
	URL      string // base URL of a Strata or PocketBase server
	Email    string // superuser, for seeding and cleanup
	Password string
	// Scenario is one of Scenarios; empty runs DefaultScenario.
	Scenario string
	Duration time.Duration
	// Concurrency is the number of workers in closed loop; in open loop
	// it bounds requests in flight (0: 1000).
	Concurrency int
	// Rate > 0 selects open loop at that many requests per second.
	Rate float64
	// Records is how many records to seed (0: 1000).
	Records int
	// Subscribers is how many SSE streams the realtime scenario opens
	// (0: DefaultSubscribers).
	Subscribers int
	// Keep leaves the seeded collection and user in place.
	Keep bool
	// Progress, when set, receives a live progress line every second.
	Progress io.Writer
	// Client sends the requests; nil makes one sized for the run.
	Client *http.Client
}

// DefaultScenario runs when Config.Scenario is empty.
const DefaultScenario = "mixed"

// latency histograms hold microseconds from 1 µs to 5 minutes, 3 digits.
const (
	histMin = 1
	histMax = int64(5 * time.Minute / time.Microsecond)
	histSig = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histSig) }

// recorder collects every request's outcome. One mutex is plenty: a
// record is ~100 ns against requests that take tens of microseconds or more.
type recorder struct {
	mu       sync.Mutex
	start    time.Time
	all      *hdrhistogram.Histogram
	ops      map[string]*opRec
	seconds  []*secRec
	statuses map[string]int64
	errors   int64
	total    int64
	errSeen  map[string]int // first few distinct error texts
}

type opRec struct {
	h         *hdrhistogram.Histogram
	n, errors int64
}

type secRec struct {
	h         *hdrhistogram.Histogram
	n, errors int64
}

func newRecorder(start time.Time) *recorder {
	return &recorder{start: start, all: newHist(), ops: map[string]*opRec{}, statuses: map[string]int64{}, errSeen: map[string]int{}}
}

// record notes one request due (or sent) at due that took lat.
func (r *recorder) record(op string, due time.Time, lat time.Duration, status int, err error) {
	us := max(lat.Microseconds(), histMin)
	failed := err != nil || status < 200 || status > 299
	sec := int(due.Sub(r.start) / time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	r.all.RecordValue(min(us, histMax))
	o := r.ops[op]
	if o == nil {
		o = &opRec{h: newHist()}
		r.ops[op] = o
	}
	o.n++
	o.h.RecordValue(min(us, histMax))
	for len(r.seconds) <= sec {
		r.seconds = append(r.seconds, &secRec{h: newHist()})
	}
	s := r.seconds[max(sec, 0)]
	s.n++
	s.h.RecordValue(min(us, histMax))
	switch {
	case err != nil:
		r.statuses["error"]++
	default:
		r.statuses[fmt.Sprint(status)]++
	}
	if failed {
		r.errors++
		o.errors++
		s.errors++
		if err != nil && len(r.errSeen) < 5 {
			r.errSeen[err.Error()]++
		}
	}
}

// Run seeds the target, runs the scenario and returns the result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Scenario == "" {
		cfg.Scenario = DefaultScenario
	}
	sc, ok := scenarios[cfg.Scenario]
	if !ok {
		return nil, fmt.Errorf("unknown scenario %q (have %s)", cfg.Scenario, strings.Join(ScenarioNames(), ", "))
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Records <= 0 {
		cfg.Records = 1000
	}
	if cfg.Concurrency <= 0 {
		if cfg.Rate > 0 {
			cfg.Concurrency = 1000
		} else {
			cfg.Concurrency = 50
		}
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{
			Timeout: time.Minute,
			Transport: &http.Transport{
				MaxIdleConns: cfg.Concurrency, MaxIdleConnsPerHost: cfg.Concurrency,
				IdleConnTimeout: time.Minute, DisableCompression: true,
			},
		}
	}
	t := &target{client: cfg.Client, base: strings.TrimRight(cfg.URL, "/")}
	if err := t.setup(ctx, cfg, sc); err != nil {
		return nil, err
	}
	if !cfg.Keep {
		defer t.cleanup(context.WithoutCancel(ctx))
	}
	var extra func() string
	if cfg.Scenario == RealtimeScenario {
		if cfg.Subscribers <= 0 {
			cfg.Subscribers = DefaultSubscribers
		}
		rt, err := startFanout(ctx, cfg, t)
		if err != nil {
			return nil, err
		}
		defer rt.close()
		t.rt, extra = rt, rt.progress
	}

	rec := newRecorder(time.Now())
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopProgress := startProgress(cfg, rec, extra)
	var missed int64
	if cfg.Rate > 0 {
		missed = openLoop(runCtx, cfg, t, sc, rec)
	} else {
		closedLoop(runCtx, cfg, t, sc, rec)
	}
	elapsed := time.Since(rec.start)
	stopProgress()
	var fan *Fanout
	if t.rt != nil {
		fan = t.rt.finish(ctx)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if rec.total == 0 {
		return nil, errors.New("no request completed")
	}
	res := rec.result(cfg, t, elapsed, missed)
	if fan != nil {
		// Every subscriber must see every create once: a delivery that
		// failed is an error of the run, not only of the fan-out.
		res.Fanout = fan
		if n := fan.errors(); n > 0 {
			res.Errors += n
			res.ErrorSamples = append(res.ErrorSamples, fan.summary())
		}
	}
	return res, nil
}

// closedLoop runs cfg.Concurrency workers, each sending its next request
// when the previous one returns.
func closedLoop(ctx context.Context, cfg Config, t *target, sc scenario, rec *recorder) {
	deadline := rec.start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), uint64(rec.start.UnixNano())))
			for ctx.Err() == nil {
				now := time.Now()
				if now.After(deadline) {
					return
				}
				op := sc.pick(rnd)
				status, err := t.do(ctx, op, rnd)
				if ctx.Err() != nil {
					return
				}
				rec.record(op, now, time.Since(now), status, err)
			}
		})
	}
	wg.Wait()
}

// openLoop sends requests on the Pacer's schedule through at most
// cfg.Concurrency in flight. A request that waits for a free worker is
// still measured from its due time. Requests still unsent a grace period
// after the end (the server fell far behind) are returned as missed.
func openLoop(ctx context.Context, cfg Config, t *target, sc scenario, rec *recorder) (missed int64) {
	p := Pacer{Rate: cfg.Rate}
	total := p.Due(cfg.Duration - 1)
	jobs := make(chan time.Time, cfg.Concurrency)
	grace := max(cfg.Duration/10, 2*time.Second)
	hardStop := rec.start.Add(cfg.Duration + grace)
	var sent atomic.Int64
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), uint64(rec.start.UnixNano())))
			for due := range jobs {
				op := sc.pick(rnd)
				status, err := t.do(ctx, op, rnd)
				if ctx.Err() != nil {
					continue
				}
				rec.record(op, due, time.Since(due), status, err)
			}
		})
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
dispatch:
	for i := int64(0); i < total; i++ {
		due := rec.start.Add(p.Offset(i))
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break dispatch
			}
		}
		select {
		case jobs <- due:
			sent.Add(1)
		case <-ctx.Done():
			break dispatch
		case <-time.After(time.Until(hardStop)):
			break dispatch
		}
	}
	close(jobs)
	wg.Wait()
	return total - sent.Load()
}

// startProgress prints a progress line every second until stopped; extra,
// if set, adds the scenario's own numbers.
func startProgress(cfg Config, rec *recorder, extra func() string) (stop func()) {
	if cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var lastN int64
		for {
			select {
			case <-done:
				fmt.Fprintln(cfg.Progress)
				return
			case <-tick.C:
			}
			rec.mu.Lock()
			n, errs := rec.total, rec.errors
			p50, p99 := ms(rec.all.ValueAtQuantile(50)), ms(rec.all.ValueAtQuantile(99))
			rec.mu.Unlock()
			el := time.Since(rec.start).Truncate(time.Second)
			more := ""
			if extra != nil {
				more = "  " + extra()
			}
			fmt.Fprintf(cfg.Progress, "\r%s [%5s/%s] %7d req  %7.0f req/s  p50 %7.2fms  p99 %8.2fms  errors %d%s   ",
				cfg.Scenario, el, cfg.Duration, n, float64(n-lastN), p50, p99, errs, more)
			lastN = n
		}
	})
	return func() { close(done); wg.Wait() }
}

// ms converts a histogram value (µs) to milliseconds.
func ms(us int64) float64 { return float64(us) / 1000 }
