// Command spikebench measures how strata degrades under a traffic spike:
// it measures the capacity of one scenario, offers an open-loop load of
// 0.5×, 1×, 2×, 4× and 10× that capacity, then drops back to 0.5× and
// watches the recovery — once with load shedding on and once, at the same
// offered loads, with it off. It prints Markdown for docs/benchmarks.md.
//
// The protected run repeats that sequence --rounds times and reports each
// phase's totals, so that the drift of a shared machine is spread over
// every phase. The unprotected run is there for contrast and runs it once:
// its backlog would carry from one round into the next.
//
//	go run ./bench/spikebench --strata bin/strata [--scenario search] [--step 10s] [--rounds 3]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/strata-run/strata/bench"
	"github.com/strata-run/strata/bench/benchproc"
)

func main() {
	strataBin := flag.String("strata", "bin/strata", "strata binary")
	scenario := flag.String("scenario", "search", "bench scenario to spike")
	step := flag.Duration("step", 10*time.Second, "duration of each load step")
	recoveryDur := flag.Duration("recovery", 15*time.Second, "duration at the first step's load after the spike")
	objective := flag.Duration("objective", 100*time.Millisecond, "latency objective: a 2xx slower than this is not goodput")
	records := flag.Int("records", 10000, "records to seed")
	modes := flag.String("modes", "protected,unprotected", "runs: protected (default flags), unprotected (--adaptive-limit=false)")
	out := flag.String("out", "", "write every run's result as JSON here")
	stepsFlag := flag.String("steps", "0.5,1,2,4,10", "offered loads as multiples of the capacity")
	conns := flag.Int("conns", 256, "the generator's connections (requests in flight)")
	capFlag := flag.Float64("capacity", 0, "capacity in req/s (0: measure it in the first run)")
	rounds := flag.Int("rounds", 3, "times the protected run repeats the steps and the recovery")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var steps []float64
	for _, f := range strings.Split(*stepsFlag, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 {
			log.Fatalf("--steps: bad multiple %q", f)
		}
		steps = append(steps, v)
	}
	capacity := *capFlag
	results := map[string]*bench.SpikeResult{}
	for _, mode := range strings.Split(*modes, ",") {
		var extra []string
		n := 1
		switch mode {
		case "protected":
			n = *rounds
		case "unprotected":
			extra = []string{"--adaptive-limit=false"}
		default:
			log.Fatalf("unknown mode %q", mode)
		}
		p, err := benchproc.Start(*strataBin, benchproc.Options{Args: extra})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "== %s (strata serve %s)\n", mode, strings.Join(extra, " "))
		res, err := bench.Spike(ctx, bench.SpikeConfig{
			URL: p.URL(), Email: benchproc.Email, Password: benchproc.Password,
			Scenario: *scenario, Steps: steps, Records: *records, StepDuration: *step, Recovery: *recoveryDur, Rounds: n,
			Objective: *objective, Capacity: capacity, Connections: *conns, Sample: p.RSS, Progress: os.Stderr,
			CPU: func() (float64, float64) { return p.CPU(), benchproc.SelfCPU() },
		})
		p.Stop()
		if err != nil {
			log.Fatalf("%s: %v", mode, err)
		}
		// Both runs offer the same loads: the capacity is measured once.
		capacity = res.Capacity
		results[mode] = res
		printResult(mode, res)
	}
	if *out != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(*out, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

func printResult(mode string, r *bench.SpikeResult) {
	fmt.Printf("\n### %s — scenario %s, capacity %.0f req/s, objective %.0f ms, unloaded p99 %.2f ms, %d round(s)\n\n",
		mode, r.Scenario, r.Capacity, r.ObjectiveMs, r.UnloadedP99, r.Rounds)
	fmt.Println("| phase | offered/s | goodput/s | goodput / peak | goodput/s by round | 2xx | refused (503/429) | errors | missed | p50 2xx | p99 2xx | p99 / unloaded | peak RSS | CPU: server | CPU: generator |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, ph := range r.Phases {
		byRound := make([]string, len(ph.RoundGoodput))
		for i, g := range ph.RoundGoodput {
			byRound[i] = fmt.Sprintf("%.0f", g)
		}
		fmt.Printf("| %s | %.0f | %.0f | %.2f | %s | %d | %d | %d | %d | %.2f ms | %.2f ms | %.2f | %d MB | %.0f%% | %.0f%% |\n",
			ph.Name, ph.Offered, ph.Goodput, ph.Goodput/r.PeakGoodput, strings.Join(byRound, ", "), ph.OK, ph.Rejected, ph.Errors, ph.Missed,
			ph.P50, ph.P99, ph.P99/r.UnloadedP99, ph.PeakRSS>>20, 100*ph.ServerCores, 100*ph.GeneratorCores)
	}
	recs := make([]string, len(r.Recoveries))
	for i, s := range r.Recoveries {
		recs[i] = "never (within the recovery phase)"
		if s >= 0 {
			recs[i] = fmt.Sprintf("%.0f s", s)
		}
	}
	fmt.Printf("\nrecovery to normal latency after the spike, by round: %s\n", strings.Join(recs, ", "))
}
