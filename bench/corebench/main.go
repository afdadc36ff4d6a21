// Command corebench measures the core API with wrk against a real strata
// process and reports every throughput as a ratio to a bare net/http
// handler measured in the same run (these machines are shared and noisy:
// only ratios compare across runs).
//
//	go run ./bench/corebench --strata bin/strata [--duration 10s] [--conns 50]
//	go run ./bench/corebench --strata bin/strata --db postgres://postgres@127.0.0.1:5432/postgres
//
// It starts the server on a temp data dir (SQLite, or with --db a fresh
// database of a random name on that PostgreSQL server, dropped at the end),
// seeds a 10,000-record collection, then runs each scenario with
// `wrk -t2 -c<conns> --latency` and prints a Markdown table for
// docs/benchmarks.md. Around each scenario it reads the server's /metrics:
// the record cache's hit ratio and, on PostgreSQL, the connections the
// pools opened (zero per second is the target at steady state).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var (
	strataBin = flag.String("strata", "bin/strata", "strata binary")
	duration  = flag.Duration("duration", 10*time.Second, "wrk duration per scenario")
	conns     = flag.Int("conns", 50, "wrk connections")
	records   = flag.Int("records", 10000, "records to seed")
	only      = flag.String("only", "", "comma-separated scenario names to run (default all)")
	flood     = flag.Bool("flood", false, "instead of the scenarios: view p99 with and without a flood of bad sign-ins")
	noReqLogs = flag.Bool("no-request-logs", false, "turn off the request log (settings.logs.maxDays = 0) before measuring")
	dbURL     = flag.String("db", "", "postgres:// URL of a server to run on (corebench creates and drops a database there); empty: SQLite")
	noCache   = flag.Bool("no-record-cache", false, "run strata serve --record-cache=false")
	serveArgs = flag.String("serve-flags", "", "more strata serve flags, space-separated (e.g. --adaptive-limit=false)")
)

// warmup is how long into a scenario the pools may still be opening
// connections; new connections after it are churn.
const warmup = time.Second

const (
	suEmail = "bench@strata.test"
	suPass  = "bench-pass-123"
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	defer runCleanups()
	cleanupOnSignal()
	if _, err := exec.LookPath("wrk"); err != nil {
		fatal("wrk not found: apt-get install -y wrk")
	}
	dir, err := os.MkdirTemp("", "strata-bench-")
	if err != nil {
		fatal(err)
	}
	atExit(func() { os.RemoveAll(dir) })

	hello := startHello()
	atExit(func() { hello.Close() })

	db := ""
	if *dbURL != "" {
		db = createDatabase(*dbURL)
	}
	srv := startStrata(dir, db)
	atExit(srv.stop)
	base := "http://" + srv.addr
	token := authSuperuser(base)
	ids := seed(base, token, *records)
	if *noReqLogs {
		call("PATCH", base+"/api/settings", token, map[string]any{"logs": map[string]any{"maxDays": 0}})
	}
	userToken := seedUser(base, token)
	_ = userToken

	scripts := filepath.Join(dir, "lua")
	os.MkdirAll(scripts, 0o755)
	type scenario struct {
		name, url, script string
	}
	viewLua := writeViewScript(scripts, ids[:min(1000, len(ids))])
	createLua := writeScript(scripts, "create.lua", `wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"created by wrk","n":42,"body":"lorem ipsum dolor sit amet"}'
`)
	authLua := writeScript(scripts, "auth.lua", `wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"identity":"user@strata.test","password":"user-pass-123"}'
`)
	list := base + "/api/collections/posts/records?perPage=20&sort=-n&filter=" + urlEscape("n >= 2500 && n < 7500")
	scenarios := []scenario{
		{"view", base, viewLua},
		{"list-skiptotal", list + "&skipTotal=1", ""},
		{"list-total", list, ""},
		{"create", base + "/api/collections/posts/records", createLua},
		{"auth-with-password", base + "/api/collections/users/auth-with-password", authLua},
	}
	wanted := map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		if n != "" {
			wanted[n] = true
		}
	}
	if *flood {
		runFlood(base, token, viewLua, scripts)
		return
	}
	helloURL := "http://" + hello.Addr().String() + "/"
	before := runWrk("hello", helloURL, "")
	var results []wrkResult
	for _, sc := range scenarios {
		if len(wanted) > 0 && !wanted[sc.name] {
			continue
		}
		m0 := srv.scrape()
		// A second scrape once the pools have grown separates their
		// warm-up from churn at steady state.
		warm := make(chan metrics, 1)
		go func() {
			if *duration <= 2*warmup {
				warm <- m0
				return
			}
			time.Sleep(warmup)
			warm <- srv.scrape()
		}()
		r := runWrk(sc.name, sc.url, sc.script)
		m1, m2 := <-warm, srv.scrape()
		r.rss = srv.peakRSS()
		r.hitRatio = hitRatio(m0, m2)
		r.newConns, r.pg = delta(m0, m2, mNewConns)
		if steady, _ := delta(m1, m2, mNewConns); *duration > 2*warmup {
			r.newConnsPerSec = steady / (*duration - warmup).Seconds()
		} else {
			r.newConnsPerSec = r.newConns / duration.Seconds()
		}
		if r.pg {
			log.Printf("%-20s new PostgreSQL connections: %.0f (%.2f/s after %v); cache hit ratio %s", sc.name, r.newConns, r.newConnsPerSec, warmup, r.hitRatio)
		}
		results = append(results, r)
	}
	after := runWrk("hello", helloURL, "")
	helloRPS := (before.rps + after.rps) / 2
	store := "SQLite"
	if db != "" {
		store = "PostgreSQL"
	}
	cacheDesc := "record cache on"
	if *noCache {
		cacheDesc = "record cache off"
	}
	fmt.Printf("\n%s, %s, %d connections, %v per scenario %s\n", store, cacheDesc, *conns, *duration, *serveArgs)
	pgHead, pgSep, pgNone := "", "", ""
	if db != "" {
		pgHead, pgSep, pgNone = fmt.Sprintf(" new PG conns | new PG conns/s after %v |", warmup), "---|---|", " — | — |"
	}
	fmt.Printf("\n| scenario | 2xx req/s | ratio to hello | p50 | p99 | non-2xx | errors | strata peak RSS | cache hit ratio |%s\n|---|---|---|---|---|---|---|---|---|%s\n", pgHead, pgSep)
	fmt.Printf("| hello (net/http, 200-byte JSON) | %.0f | 1.00 | %s | %s | %d | %d | — | — |%s\n", helloRPS, before.p50, before.p99, before.non2xx, before.errors, pgNone)
	for _, r := range results {
		pg := ""
		if db != "" {
			pg = " — | — |"
			if r.pg {
				pg = fmt.Sprintf(" %.0f | %.2f |", r.newConns, r.newConnsPerSec)
			}
		}
		fmt.Printf("| %s | %.0f | %.3f | %s | %s | %d | %d | %.0f MB | %s |%s\n", r.name, r.rps, r.rps/helloRPS, r.p50, r.p99, r.non2xx, r.errors, r.rss/1024, r.hitRatio, pg)
	}
	fmt.Printf("\nhello before %.0f req/s, after %.0f req/s (noise check)\n", before.rps, after.rps)
}

// startHello serves the baseline: a bare handler returning 200 bytes of JSON.
func startHello() net.Listener {
	body := []byte(`{"message":"hello","data":{"id":"abcdefghijklmno","title":"baseline response body of exactly two hundred bytes","n":12345,"ok":true},"padding":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	if len(body) != 200 {
		fatalf("hello body is %d bytes, want 200", len(body))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	return ln
}

type strataProc struct {
	cmd               *exec.Cmd
	addr, metricsAddr string
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startStrata serves from dir, on SQLite when db is empty, else on the
// PostgreSQL database db.
func startStrata(dir, db string) *strataProc {
	out, err := exec.Command(*strataBin, "superuser", "upsert", suEmail, suPass, "--dir", dir, "--db", db).CombinedOutput()
	if err != nil {
		fatalf("superuser upsert: %v: %s", err, out)
	}
	addr := freeAddr()
	// The metrics listener needs no sign-in: scraping through /api would
	// look the superuser up in the record cache and skew its hit ratio.
	maddr := freeAddr()
	args := []string{"serve", "--http", addr, "--metrics-addr", maddr, "--dir", dir, "--db", db, "--log-level", "warn"}
	if *noCache {
		args = append(args, "--record-cache=false")
	}
	args = append(args, strings.Fields(*serveArgs)...)
	cmd := exec.Command(*strataBin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		fatal(err)
	}
	p := &strataProc{cmd: cmd, addr: addr, metricsAddr: maddr}
	for i := 0; i < 100; i++ {
		if res, err := http.Get("http://" + addr + "/api/health"); err == nil {
			res.Body.Close()
			return p
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.stop()
	fatal("strata did not start")
	return nil
}

func (p *strataProc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
	}
}

// peakRSS is the process's VmHWM in KiB.
func (p *strataProc) peakRSS() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func call(method, url, token string, body any) map[string]any {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		fatalf("%s %s: %d %s", method, url, res.StatusCode, raw)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	return m
}

func authSuperuser(base string) string {
	res := call("POST", base+"/api/collections/_superusers/auth-with-password", "", map[string]any{"identity": suEmail, "password": suPass})
	return res["token"].(string)
}

// seed creates "posts" (public rules, an index on n) with n records, in
// batches, and returns their ids.
func seed(base, token string, n int) []string {
	call("POST", base+"/api/collections", token, map[string]any{
		"name": "posts", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
		"fields": []any{
			map[string]any{"name": "title", "type": "text"},
			map[string]any{"name": "n", "type": "number"},
			map[string]any{"name": "body", "type": "text"},
			map[string]any{"name": "created", "type": "autodate", "onCreate": true},
			map[string]any{"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true},
		},
		"indexes": []string{"CREATE INDEX idx_posts_n ON posts (n)"},
	})
	call("PATCH", base+"/api/settings", token, map[string]any{"batch": map[string]any{"enabled": true, "maxRequests": 500, "timeout": 30}})
	var ids []string
	for start := 0; start < n; start += 500 {
		var reqs []any
		for i := start; i < min(start+500, n); i++ {
			reqs = append(reqs, map[string]any{"method": "POST", "url": "/api/collections/posts/records",
				"body": map[string]any{"title": fmt.Sprintf("post number %d", i), "n": i, "body": strings.Repeat("lorem ipsum ", 8)}})
		}
		b, _ := json.Marshal(map[string]any{"requests": reqs})
		req, _ := http.NewRequest("POST", base+"/api/batch", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			fatalf("seed batch: %d %s", res.StatusCode, raw)
		}
		var out []struct {
			Body struct {
				ID string `json:"id"`
			} `json:"body"`
		}
		json.Unmarshal(raw, &out)
		for _, o := range out {
			ids = append(ids, o.Body.ID)
		}
	}
	log.Printf("seeded %d records", len(ids))
	return ids
}

func seedUser(base, token string) string {
	call("POST", base+"/api/collections/users/records", token, map[string]any{
		"email": "user@strata.test", "password": "user-pass-123", "passwordConfirm": "user-pass-123"})
	return ""
}

func writeScript(dir, name, body string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		fatal(err)
	}
	return p
}

// writeViewScript rotates GET requests over ids.
func writeViewScript(dir string, ids []string) string {
	var b strings.Builder
	b.WriteString("local ids = {")
	for i, id := range ids {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"` + id + `"`)
	}
	b.WriteString("}\nlocal i = 0\nrequest = function()\n  i = i + 1\n  return wrk.format(\"GET\", \"/api/collections/posts/records/\" .. ids[(i % #ids) + 1])\nend\n")
	return writeScript(dir, "view.lua", b.String())
}

type wrkResult struct {
	name           string
	rps            float64
	p50, p99       string
	non2xx, errors int
	rss            float64
	hitRatio       string // the record cache's, over the scenario
	// New PostgreSQL connections over the whole scenario, and per second
	// after warmup; pg is false on SQLite.
	newConns, newConnsPerSec float64
	pg                       bool
}

var (
	rpsRe    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	totalRe  = regexp.MustCompile(`(\d+) requests in ([\d.]+)(ms|s|m)\b`)
	p50Re    = regexp.MustCompile(`\s50%\s+(\S+)`)
	p99Re    = regexp.MustCompile(`\s99%\s+(\S+)`)
	non2xxRe = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	errRe    = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func runWrk(name, url, script string) wrkResult {
	args := []string{"-t2", fmt.Sprintf("-c%d", *conns), "-d" + duration.String(), "--latency"}
	if script != "" {
		args = append(args, "-s", script)
	}
	return runWrkArgs(name, append(args, url))
}

func runWrkArgs(name string, args []string) wrkResult {
	out, err := exec.CommandContext(runCtx, "wrk", args...).CombinedOutput()
	if err != nil {
		fatalf("wrk %s: %v: %s", name, err, out)
	}
	r := wrkResult{name: name}
	if m := rpsRe.FindSubmatch(out); m != nil {
		r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if m := p50Re.FindSubmatch(out); m != nil {
		r.p50 = string(m[1])
	}
	if m := p99Re.FindSubmatch(out); m != nil {
		r.p99 = string(m[1])
	}
	if m := non2xxRe.FindSubmatch(out); m != nil {
		r.non2xx, _ = strconv.Atoi(string(m[1]))
	}
	if m := errRe.FindSubmatch(out); m != nil {
		for _, g := range m[1:] {
			n, _ := strconv.Atoi(string(g))
			r.errors += n
		}
	}
	// Throughput counts answered requests only: a refused request (503,
	// 429) is cheap, and counting it would reward a node for shedding.
	if m := totalRe.FindSubmatch(out); m != nil {
		n, _ := strconv.ParseFloat(string(m[1]), 64)
		secs, _ := strconv.ParseFloat(string(m[2]), 64)
		switch string(m[3]) {
		case "ms":
			secs /= 1000
		case "m":
			secs *= 60
		}
		if secs > 0 {
			r.rps = (n - float64(r.non2xx)) / secs
		}
	}
	log.Printf("%-20s %8.0f req/s  p50 %-8s p99 %-8s non2xx %d errors %d", name, r.rps, r.p50, r.p99, r.non2xx, r.errors)
	return r
}

func urlEscape(s string) string {
	r := strings.NewReplacer(" ", "%20", ">", "%3E", "<", "%3C", "=", "%3D", "&", "%26")
	return r.Replace(s)
}

// runFlood measures what a flood of bad sign-ins does to other clients'
// reads: the view p99 of 10 connections alone, then while ~300 wrong
// passwords a second (10x the hashing capacity) arrive from random client
// addresses (X-Forwarded-For is
// trusted for this run, so per-IP limits do not stop the flood and it
// reaches the password hasher).
func runFlood(base, token, viewLua, scripts string) {
	call("PATCH", base+"/api/settings", token, map[string]any{"trustedProxy": map[string]any{"headers": []string{"X-Forwarded-For"}}})
	floodLua := writeScript(scripts, "flood.lua", `wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"identity":"user@strata.test","password":"not-the-password"}'
math.randomseed(os.time())
request = function()
  wrk.headers["X-Forwarded-For"] = math.random(1, 223) .. "." .. math.random(0, 255) .. "." .. math.random(0, 255) .. "." .. math.random(1, 254)
  return wrk.format()
end
-- 60 connections each pausing 200 ms offer about 300 sign-ins a second:
-- ten times what one hash slot (the default on 2 cores) can verify.
delay = function()
  return 200
end
`)
	view := func(name string) wrkResult {
		return runWrkArgs(name, []string{"-t1", "-c10", "-d" + duration.String(), "--latency", "-s", viewLua, base})
	}
	alone := view("view alone")
	done := make(chan wrkResult)
	go func() {
		done <- runWrkArgs("sign-in flood", []string{"-t1", "-c60", "-d" + (*duration + 2*time.Second).String(), "--latency", "-s", floodLua,
			base + "/api/collections/users/auth-with-password"})
	}()
	time.Sleep(time.Second)
	loaded := view("view under flood")
	f := <-done
	fmt.Printf("\n| measurement | req/s | p50 | p99 | non-2xx |\n|---|---|---|---|---|\n")
	for _, r := range []wrkResult{alone, loaded, f} {
		fmt.Printf("| %s | %.0f | %s | %s | %d |\n", r.name, r.rps, r.p50, r.p99, r.non2xx)
	}
	fmt.Printf("\nview p99 under flood / alone: %.2f\n", parseDur(loaded.p99)/parseDur(alone.p99))
}

func parseDur(s string) float64 {
	d, err := time.ParseDuration(strings.Replace(s, "us", "µs", 1))
	if err != nil {
		return 0
	}
	return float64(d)
}
