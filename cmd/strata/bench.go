package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/strata-run/strata/bench"
)

// runBench is `strata bench [flags]` and `strata bench compare A.json B.json`.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "compare" {
		if len(args) != 3 {
			return errors.New("usage: strata bench compare A.json B.json")
		}
		a, err := bench.ReadResult(args[1])
		if err != nil {
			return err
		}
		b, err := bench.ReadResult(args[2])
		if err != nil {
			return err
		}
		bench.Compare(stdout, a, b)
		return nil
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg bench.Config
	var superuser, rate, out, html string
	var quiet bool
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8090", "server to load (Strata or PocketBase)")
	fs.StringVar(&superuser, "superuser", envOr("STRATA_BENCH_SUPERUSER", ""), "EMAIL:PASSWORD of a superuser, for seeding (env STRATA_BENCH_SUPERUSER)")
	fs.StringVar(&cfg.Scenario, "scenario", "", "scenario: "+strings.Join(bench.ScenarioNames(), ", ")+" (default "+bench.DefaultScenario+")")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to send load")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, "closed loop: workers (default 50); open loop: max requests in flight (default 1000)")
	fs.StringVar(&rate, "rate", "", "open loop at this rate, e.g. 2000/s (default: closed loop)")
	fs.IntVar(&cfg.Records, "records", 1000, "records to seed")
	fs.IntVar(&cfg.Subscribers, "subscribers", bench.DefaultSubscribers, "realtime scenario: SSE streams watching the collection (Strata allows 500 per address unless STRATA_REALTIME_CLIENTS_PER_IP is raised)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the seeded collection afterwards")
	fs.StringVar(&out, "out", "", "write the JSON result here")
	fs.StringVar(&html, "html", "", "write the HTML report here")
	fs.BoolVar(&quiet, "quiet", false, "no progress line")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: strata bench --url URL --superuser EMAIL:PASSWORD [--scenario NAME] [--duration 10s] [--concurrency 50 | --rate 2000/s] [--subscribers 100] [--out result.json] [--html report.html]")
		fmt.Fprintln(stderr, "       strata bench compare A.json B.json\n\nScenarios:")
		for _, n := range bench.ScenarioNames() {
			fmt.Fprintf(stderr, "  %-8s %s\n", n, bench.ScenarioDescription(n))
		}
		fmt.Fprintln(stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var ok bool
	if cfg.Email, cfg.Password, ok = strings.Cut(superuser, ":"); !ok || cfg.Email == "" {
		return errors.New("bench: --superuser EMAIL:PASSWORD is required")
	}
	if rate != "" {
		r, err := bench.ParseRate(rate)
		if err != nil {
			return err
		}
		cfg.Rate = r
	}
	if !quiet {
		cfg.Progress = stderr
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	res.PrintSummary(stdout)
	if out != "" {
		if err := res.WriteJSON(out); err != nil {
			return err
		}
	}
	if html != "" {
		if err := res.WriteHTML(html); err != nil {
			return err
		}
	}
	return nil
}
