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

// SpikeConfig is a spike run: measure the capacity of one scenario, then
// offer an open-loop load stepped through multiples of it, then fall back
// to the first step and watch the server recover.
type SpikeConfig struct {
	URL      string
	Email    string // superuser, for seeding and cleanup
	Password string
	// Scenario defaults to "search", an expensive list whose capacity the
	// load generator can exceed tenfold on the same machine.
	Scenario string
	Records  int // seeded records (0: 10,000)
	// Steps are the offered loads as multiples of the capacity
	// (default 0.5, 1, 2, 4, 10); the first is also the recovery load.
	Steps        []float64
	StepDuration time.Duration // default 10s
	Recovery     time.Duration // time at Steps[0] after the last step (default 15s)
	// Rounds repeats the whole sequence, steps and recovery (default 1).
	// Each phase then reports its totals over the rounds. On a shared VM
	// two 10 s phases at the same load a minute apart can differ in
	// goodput by a quarter or more; interleaving the phases spreads that
	// drift over all of them, instead of letting it decide one phase
	// against the peak.
	Rounds int
	// Objective is the latency a response must meet to count as goodput
	// (default 100ms).
	Objective time.Duration
	// Capacity in requests per second; 0 measures it first with a
	// closed loop of CapacityConcurrency workers (default 8: enough to
	// keep 2 cores busy without queueing into the load shedder).
	Capacity            float64
	CapacityConcurrency int
	Connections         int           // the generator's connections, hence its requests in flight (default 256)
	Timeout             time.Duration // client timeout per request (default 10s)
	// Sample, when set, is called every second; its value (e.g. the
	// server's RSS in bytes) is kept per second and per phase.
	Sample func() int64
	// CPU, when set, returns the CPU seconds used so far by the server
	// and by the generator; each phase reports the cores each used. On
	// shared cores this is where the refusals of a spike show their price.
	CPU      func() (server, generator float64)
	Progress io.Writer
	Client   *http.Client
}

// SpikeResult is the outcome of a spike run. Latencies are milliseconds,
// measured from each request's due time (no coordinated omission).
type SpikeResult struct {
	Scenario    string       `json:"scenario"`
	Capacity    float64      `json:"capacity"`
	ObjectiveMs float64      `json:"objectiveMs"`
	UnloadedP99 float64      `json:"unloadedP99"` // p99 of accepted requests at Steps[0]
	PeakGoodput float64      `json:"peakGoodput"` // best goodput of any phase, per second
	Rounds      int          `json:"rounds"`
	Phases      []SpikePhase `json:"phases"` // one per step, then the recovery; totals over the rounds
	// RecoverySeconds is how long after the last step ended the
	// per-second p99 stayed above twice the unloaded p99 (or requests were
	// refused); -1 when it never recovered within Recovery. With several
	// rounds it is the worst round's; Recoveries has each.
	RecoverySeconds float64   `json:"recoverySeconds"`
	Recoveries      []float64 `json:"recoveries"`
	// Timeline has one tick per second of the whole run; a tick's Phase
	// is its segment: round × (len(Steps)+1) + the phase's index.
	Timeline []SpikeTick `json:"timeline"`
}

// SpikePhase is one step of offered load.
type SpikePhase struct {
	Name     string  `json:"name"`
	Multiple float64 `json:"multiple"`
	Offered  float64 `json:"offered"` // requests per second
	Seconds  float64 `json:"seconds"`
	Sent     int64   `json:"sent"`
	OK       int64   `json:"ok"`       // 2xx
	Good     int64   `json:"good"`     // 2xx within the objective
	Rejected int64   `json:"rejected"` // 503 and 429: refused early
	Errors   int64   `json:"errors"`   // anything else, timeouts included
	Missed   int64   `json:"missed"`   // due but not sent within the client timeout (all connections busy)
	Goodput  float64 `json:"goodput"`  // Good per second
	P50      float64 `json:"p50"`      // of accepted (2xx) requests
	P99      float64 `json:"p99"`
	Max      float64 `json:"max"`
	PeakRSS  int64   `json:"peakRSS,omitempty"`
	// Cores used by the server and by the generator during the phase
	// (CPU seconds per second; set when SpikeConfig.CPU is).
	ServerCores    float64 `json:"serverCores,omitempty"`
	GeneratorCores float64 `json:"generatorCores,omitempty"`
	// RoundGoodput is the goodput of each round alone: its spread shows
	// how much of a difference between phases is noise.
	RoundGoodput []float64 `json:"roundGoodput"`
}

// SpikeTick is one second of the run.
type SpikeTick struct {
	Second   int     `json:"second"`
	Phase    int     `json:"phase"` // the segment, not an index into Phases (see SpikeResult.Timeline)
	OK       int64   `json:"ok"`
	Rejected int64   `json:"rejected"`
	Errors   int64   `json:"errors"`
	P99      float64 `json:"p99"`
	Sample   int64   `json:"sample,omitempty"`
}

// spikeRec collects outcomes by phase and by second of due time.
type spikeRec struct {
	mu        sync.Mutex
	start     time.Time
	objective int64 // µs
	phases    []*phaseRec
	ticks     []*tickRec
}

type phaseRec struct {
	h                                   *hdrhistogram.Histogram
	sent, ok, good, rejected, errs, mis int64
	peak                                int64
}

type tickRec struct {
	h                  *hdrhistogram.Histogram
	phase              int
	ok, rejected, errs int64
	sample             int64
	phaseSet           bool
}

func (r *spikeRec) tick(sec int) *tickRec {
	for len(r.ticks) <= sec {
		r.ticks = append(r.ticks, &tickRec{h: newHist()})
	}
	return r.ticks[sec]
}

func (r *spikeRec) record(phase int, due time.Time, lat time.Duration, status int, err error) {
	us := min(max(lat.Microseconds(), histMin), histMax)
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.phases[phase]
	t := r.tick(max(int(due.Sub(r.start)/time.Second), 0))
	if !t.phaseSet {
		t.phase, t.phaseSet = phase, true
	}
	switch {
	case err == nil && status >= 200 && status < 300:
		p.ok++
		t.ok++
		p.h.RecordValue(us)
		t.h.RecordValue(us)
		if us <= r.objective {
			p.good++
		}
	case err == nil && (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests):
		p.rejected++
		t.rejected++
	default:
		p.errs++
		t.errs++
	}
}

// Spike seeds the target, measures capacity unless given, and runs the
// stepped load.
func Spike(ctx context.Context, cfg SpikeConfig) (*SpikeResult, error) {
	if cfg.Scenario == "" {
		cfg.Scenario = "search"
	}
	sc, ok := scenarios[cfg.Scenario]
	if !ok {
		return nil, fmt.Errorf("unknown scenario %q (have %s)", cfg.Scenario, strings.Join(ScenarioNames(), ", "))
	}
	if len(cfg.Steps) == 0 {
		cfg.Steps = []float64{0.5, 1, 2, 4, 10}
	}
	if cfg.Records <= 0 {
		cfg.Records = 10000
	}
	if cfg.StepDuration <= 0 {
		cfg.StepDuration = 10 * time.Second
	}
	if cfg.Recovery <= 0 {
		cfg.Recovery = 15 * time.Second
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 1
	}
	if cfg.Objective <= 0 {
		cfg.Objective = 100 * time.Millisecond
	}
	if cfg.CapacityConcurrency <= 0 {
		cfg.CapacityConcurrency = 8
	}
	if cfg.Connections <= 0 {
		cfg.Connections = 256
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{
			Timeout: cfg.Timeout,
			Transport: &http.Transport{
				MaxIdleConns: cfg.Connections, MaxIdleConnsPerHost: cfg.Connections,
				IdleConnTimeout: time.Minute, DisableCompression: true,
			},
		}
	}
	t := &target{client: cfg.Client, base: strings.TrimRight(cfg.URL, "/")}
	if err := t.setup(ctx, Config{Email: cfg.Email, Password: cfg.Password, Records: cfg.Records}, sc); err != nil {
		return nil, err
	}
	defer t.cleanup(context.WithoutCancel(ctx))

	if cfg.Capacity <= 0 {
		// A short warm-up first, so that caches and pools are in the
		// state the steps will find them in.
		warm := newRecorder(time.Now())
		closedLoop(ctx, Config{Concurrency: cfg.CapacityConcurrency, Duration: 2 * time.Second}, t, sc, warm)
		rec := newRecorder(time.Now())
		capDur := max(cfg.StepDuration/2, 3*time.Second)
		closedLoop(ctx, Config{Concurrency: cfg.CapacityConcurrency, Duration: capDur}, t, sc, rec)
		cfg.Capacity = float64(rec.statuses["200"]) / time.Since(rec.start).Seconds()
		if cfg.Capacity <= 0 {
			return nil, errors.New("capacity: no successful request")
		}
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "capacity: %.0f req/s (closed loop, %d workers)\n", cfg.Capacity, cfg.CapacityConcurrency)
		}
	}

	type segment struct {
		name     string
		multiple float64
		dur      time.Duration
	}
	var round []segment
	for _, m := range cfg.Steps {
		round = append(round, segment{fmt.Sprintf("%gx", m), m, cfg.StepDuration})
	}
	round = append(round, segment{fmt.Sprintf("recovery %gx", cfg.Steps[0]), cfg.Steps[0], cfg.Recovery})
	var segs []segment
	for range cfg.Rounds {
		segs = append(segs, round...)
	}

	rec := &spikeRec{objective: cfg.Objective.Microseconds()}
	for range segs {
		rec.phases = append(rec.phases, &phaseRec{h: newHist()})
	}
	rec.start = time.Now()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var cur atomic.Int32
	stopSampler := startSpikeSampler(cfg, rec, &cur)

	// A fixed pool of connections, as a load balancer or an app's HTTP
	// client keeps: when all are busy, due requests wait in the generator
	// and are charged from their due time; one that could not even be sent
	// within the client timeout is missed (counted against the server).
	type job struct {
		phase int
		due   time.Time
		op    string
		seed  uint64
	}
	jobs := make(chan job, cfg.Connections)
	var wg sync.WaitGroup
	for range cfg.Connections {
		wg.Go(func() {
			raw, rawErr := newRawConn(t.base, cfg.Timeout)
			if rawErr == nil {
				defer raw.close()
			}
			for j := range jobs {
				if time.Since(j.due) > cfg.Timeout {
					rec.mu.Lock()
					rec.phases[j.phase].mis++
					rec.mu.Unlock()
					continue
				}
				var status int
				var err error
				method, path, _, reqErr := t.request(j.op, rand.New(rand.NewPCG(j.seed, 0)))
				if rawErr == nil && reqErr == nil && method == "GET" {
					status, err = raw.get(path)
				} else {
					status, err = t.do(runCtx, j.op, rand.New(rand.NewPCG(j.seed, 0)))
				}
				if runCtx.Err() != nil {
					continue
				}
				rec.record(j.phase, j.due, time.Since(j.due), status, err)
			}
		})
	}
	rnd := rand.New(rand.NewPCG(1, uint64(rec.start.UnixNano())))
	segStart := rec.start
	// CPU is read at each phase boundary, and divided by the time between
	// the readings: when the generator falls behind (every connection
	// busy), a phase ends late.
	type cpuMark struct {
		at                time.Time
		server, generator float64
	}
	cpu := make([]cpuMark, len(segs)+1)
	markCPU := func(i int) {
		if cfg.CPU != nil {
			cpu[i].at = time.Now()
			cpu[i].server, cpu[i].generator = cfg.CPU()
		}
	}
	markCPU(0)
	for i, s := range segs {
		cur.Store(int32(i))
		p := Pacer{Rate: s.multiple * cfg.Capacity}
		total := p.Due(s.dur - 1)
		var sent int64
		for sent < total && runCtx.Err() == nil {
			due := p.Due(time.Since(segStart))
			for ; sent < min(due, total) && runCtx.Err() == nil; sent++ {
				select {
				case jobs <- job{phase: i, due: segStart.Add(p.Offset(sent)), op: sc.pick(rnd), seed: rnd.Uint64()}:
				case <-runCtx.Done():
				}
				rec.mu.Lock()
				rec.phases[i].sent++
				rec.mu.Unlock()
			}
			time.Sleep(time.Millisecond)
		}
		segStart = segStart.Add(s.dur)
		if d := time.Until(segStart); d > 0 {
			time.Sleep(d)
		}
		markCPU(i + 1)
	}
	close(jobs)
	wg.Wait()
	stopSampler()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	res := &SpikeResult{Scenario: cfg.Scenario, Capacity: cfg.Capacity, ObjectiveMs: ms(cfg.Objective.Microseconds()), Rounds: cfg.Rounds}
	for j, s := range round {
		ph := SpikePhase{Name: s.name, Multiple: s.multiple, Offered: s.multiple * cfg.Capacity}
		h := newHist()
		var cpuSecs, server, generator float64
		for i := j; i < len(segs); i += len(round) {
			pr := rec.phases[i]
			ph.Seconds += s.dur.Seconds()
			ph.Sent += pr.sent
			ph.OK += pr.ok
			ph.Good += pr.good
			ph.Rejected += pr.rejected
			ph.Errors += pr.errs
			ph.Missed += pr.mis
			ph.PeakRSS = max(ph.PeakRSS, pr.peak)
			ph.RoundGoodput = append(ph.RoundGoodput, float64(pr.good)/s.dur.Seconds())
			h.Merge(pr.h)
			if el := cpu[i+1].at.Sub(cpu[i].at).Seconds(); cfg.CPU != nil && el > 0 {
				cpuSecs += el
				server += cpu[i+1].server - cpu[i].server
				generator += cpu[i+1].generator - cpu[i].generator
			}
		}
		ph.Goodput = float64(ph.Good) / ph.Seconds
		if cpuSecs > 0 {
			ph.ServerCores, ph.GeneratorCores = server/cpuSecs, generator/cpuSecs
		}
		if ph.OK > 0 {
			ph.P50, ph.P99, ph.Max = ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(99)), ms(h.Max())
		}
		res.Phases = append(res.Phases, ph)
		res.PeakGoodput = max(res.PeakGoodput, ph.Goodput)
	}
	res.UnloadedP99 = res.Phases[0].P99
	for sec, tk := range rec.ticks {
		st := SpikeTick{Second: sec, Phase: tk.phase, OK: tk.ok, Rejected: tk.rejected, Errors: tk.errs, Sample: tk.sample}
		if tk.ok > 0 {
			st.P99 = ms(tk.h.ValueAtQuantile(99))
		}
		res.Timeline = append(res.Timeline, st)
	}
	for i := len(round) - 1; i < len(segs); i += len(round) {
		r := recovery(res, i)
		res.Recoveries = append(res.Recoveries, r)
		if r < 0 || res.RecoverySeconds < 0 {
			res.RecoverySeconds = -1
		} else {
			res.RecoverySeconds = max(res.RecoverySeconds, r)
		}
	}
	return res, nil
}

// recovery is the number of seconds into the recovery phase after which
// every second is normal again: p99 within twice the unloaded p99, nothing
// refused, no errors. -1 if the phase never settles.
func recovery(res *SpikeResult, phase int) float64 {
	first, last, end := -1, -1, -1
	for i, tk := range res.Timeline {
		if tk.Phase != phase || tk.OK+tk.Rejected+tk.Errors == 0 {
			continue
		}
		if first < 0 {
			first = i
		}
		end = i
		if tk.Rejected > 0 || tk.Errors > 0 || tk.P99 > 2*res.UnloadedP99 {
			last = i
		}
	}
	switch {
	case first < 0:
		return -1
	case last < 0:
		return 0
	case last == end:
		return -1
	}
	return float64(last - first + 1)
}

// startSpikeSampler calls cfg.Sample each second and prints progress.
func startSpikeSampler(cfg SpikeConfig, rec *spikeRec, cur *atomic.Int32) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				if cfg.Progress != nil {
					fmt.Fprintln(cfg.Progress)
				}
				return
			case <-tick.C:
			}
			var v int64
			if cfg.Sample != nil {
				v = cfg.Sample()
			}
			phase := int(cur.Load())
			sec := max(int(time.Since(rec.start)/time.Second)-1, 0)
			rec.mu.Lock()
			t := rec.tick(sec)
			t.sample = v
			p := rec.phases[phase]
			p.peak = max(p.peak, v)
			ok, rej, errs := t.ok, t.rejected, t.errs
			p99 := ms(t.h.ValueAtQuantile(99))
			rec.mu.Unlock()
			if cfg.Progress != nil {
				fmt.Fprintf(cfg.Progress, "\rphase %d  second %3d  ok %6d  refused %6d  errors %5d  p99 %8.2fms   ", phase, sec, ok, rej, errs, p99)
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
