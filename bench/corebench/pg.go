package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// cleanups run at exit, last registered first, on success, on fatal and on
// SIGINT/SIGTERM: the server must stop before its database is dropped, and
// a failed run must not leave a database behind on a shared server.
var (
	cleanupMu sync.Mutex
	cleanups  []func()
	// runCtx ends the wrk child on the way out, so that an interrupted run
	// leaves no load generator behind.
	runCtx, cancelRun = context.WithCancel(context.Background())
)

func atExit(f func()) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanups = append(cleanups, f)
}

// runCleanups holds the lock throughout, so that a signal arriving while
// main cleans up waits for it (the database drop included) before exiting.
// Cleanups must not call fatal.
func runCleanups() {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

func fatal(v ...any) {
	log.Print(v...)
	cancelRun()
	runCleanups()
	os.Exit(1)
}

func fatalf(format string, v ...any) {
	log.Printf(format, v...)
	cancelRun()
	runCleanups()
	os.Exit(1)
}

// cleanupOnSignal makes an interrupted run clean up as a failed one does.
func cleanupOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-ch
		fatalf("%v: stopping", s)
	}()
}

// createDatabase creates a database with a random name on the server that
// serverURL points at (connecting to the database it names) and returns a
// URL for the new one; it is dropped at exit.
func createDatabase(serverURL string) string {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		fatalf("--db %q: want a postgres:// URL", serverURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		fatalf("--db: connect: %v", err)
	}
	defer conn.Close(context.Background())
	b := make([]byte, 6)
	rand.Read(b)
	// A generated name: nothing from the command line reaches the SQL.
	name := "strata_bench_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		fatalf("--db: create database: %v", err)
	}
	atExit(func() { dropDatabase(serverURL, name) })
	log.Printf("created database %s", name)
	u.Path = "/" + name
	return u.String()
}

func dropDatabase(serverURL, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		log.Printf("drop database %s: %v (drop it by hand)", name, err)
		return
	}
	defer conn.Close(context.Background())
	// FORCE ends sessions a server that did not stop in time left behind.
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		log.Printf("drop database %s: %v (drop it by hand)", name, err)
		return
	}
	log.Printf("dropped database %s", name)
}

// Metric families corebench reads from the server's /metrics.
const (
	mNewConns    = "strata_store_pool_new_connections_total" // every pool, replicas included
	mCacheHits   = "strata_cache_hits_total"
	mCacheMisses = "strata_cache_misses_total"
)

// metrics is a scrape: each wanted family summed over its series; a family
// the server does not export (no cache, SQLite pools) is absent.
type metrics map[string]float64

func (m metrics) has(name string) bool { _, ok := m[name]; return ok }

// scrape reads the server's metrics listener.
func (p *strataProc) scrape() metrics {
	res, err := http.Get("http://" + p.metricsAddr + "/metrics")
	if err != nil {
		fatalf("GET /metrics: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		fatalf("GET /metrics: %d", res.StatusCode)
	}
	m := metrics{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 {
			name = line[:i]
			_, rest, _ = strings.Cut(line[i:], "} ")
		}
		switch name {
		case mNewConns, mCacheHits, mCacheMisses:
		default:
			continue
		}
		if name == mNewConns && !strings.Contains(line, `store="postgres"`) {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			fatalf("/metrics: bad line %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			fatalf("/metrics: bad line %q", line)
		}
		m[name] += v
	}
	if err := sc.Err(); err != nil {
		fatalf("GET /metrics: %v", err)
	}
	return m
}

// delta is after minus before for one family (false when not exported).
func delta(before, after metrics, name string) (float64, bool) {
	if !before.has(name) || !after.has(name) {
		return 0, false
	}
	return after[name] - before[name], true
}

// hitRatio formats the record cache's hit ratio between two scrapes: "—"
// without a cache or without look-ups (lists and creates do none).
func hitRatio(before, after metrics) string {
	h, ok1 := delta(before, after, mCacheHits)
	m, ok2 := delta(before, after, mCacheMisses)
	if !ok1 || !ok2 || h+m == 0 {
		return "—"
	}
	return fmt.Sprintf("%.4f", h/(h+m))
}
