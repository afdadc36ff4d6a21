// Command realtimebench measures realtime fan-out over SSE on one node:
// it starts `strata serve`, connects N raw SSE clients over loopback,
// subscribes them to one collection and creates records at a fixed rate,
// measuring delivery latency from just before each create request to the
// event's receipt, deliveries/s, the server's CPU and RSS, and checking
// that every event reached exactly the clients allowed to see it, once.
//
//	go run ./bench/realtimebench --strata bin/strata --scenario owner --clients 5000
//
// Scenarios: owner (listRule "owner = @request.auth.id", clients spread
// over --users users), public (listRule ""), idle (no creates; RSS per
// connection). See docs/benchmarks.md, section Realtime.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/strata-run/strata/bench/benchproc"
)

var (
	strataBin = flag.String("strata", "bin/strata", "strata binary")
	scenario  = flag.String("scenario", "public", "owner | public | idle")
	clients   = flag.Int("clients", 5000, "SSE clients")
	users     = flag.Int("users", 100, "users the clients authenticate as (owner scenario)")
	rate      = flag.Int("rate", 20, "creates per second")
	duration  = flag.Duration("duration", 30*time.Second, "how long to create records")
	settle    = flag.Duration("settle", 5*time.Second, "idle: wait before reading RSS")
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	raiseNoFile()
	srv, err := benchproc.Start(*strataBin, benchproc.Options{Env: []string{"STRATA_REALTIME_CLIENTS_PER_IP=-1"}})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Stop()
	base := srv.URL()
	su := authToken(base, "_superusers", benchproc.Email, benchproc.Password)

	rule := `""`
	if *scenario == "owner" {
		rule = `"owner = @request.auth.id"`
	}
	call("POST", base+"/api/collections", su, rawJSON(`{"name":"feed","type":"base","listRule":`+rule+`,"viewRule":`+rule+`,
		"fields":[{"name":"owner","type":"relation","collectionId":"_pb_users_auth_","maxSelect":1},
		{"name":"seq","type":"number"},{"name":"ts","type":"text"}]}`))
	var userIDs, tokens []string
	if *scenario == "owner" {
		for i := range *users {
			email := fmt.Sprintf("u%d@strata.test", i)
			rec := call("POST", base+"/api/collections/users/records", su, map[string]any{"email": email, "password": "pass-12345", "passwordConfirm": "pass-12345"})
			userIDs = append(userIDs, rec["id"].(string))
			// Impersonation skips Argon2 and the sign-in attempt limits.
			tok := call("POST", base+"/api/collections/users/impersonate/"+userIDs[i], su, map[string]any{"duration": 3600})
			tokens = append(tokens, tok["token"].(string))
		}
	}

	maxEvents := *rate*int(duration.Seconds()) + *rate
	if *scenario == "idle" {
		maxEvents = 0
	}
	rssBefore := (srv.RSS() >> 10)
	log.Printf("server RSS before clients: %.1f MiB", float64(rssBefore)/1024)
	t0 := time.Now()
	cls := make([]*client, *clients)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				tok := ""
				if tokens != nil {
					tok = tokens[i%len(tokens)]
				}
				cls[i] = connect(srv.Addr, base, tok, maxEvents)
			}
		}()
	}
	for i := range *clients {
		work <- i
	}
	close(work)
	wg.Wait()
	log.Printf("%d clients connected and subscribed in %v", *clients, time.Since(t0).Round(time.Millisecond))

	if *scenario == "idle" {
		time.Sleep(*settle)
		rss := (srv.RSS() >> 10)
		per := float64(rss-rssBefore) / float64(*clients)
		fmt.Printf("RESULT scenario=idle clients=%d rss_before=%.1fMiB rss_after=%.1fMiB per_conn=%.1fKiB goroutines/cpu see pprof\n",
			*clients, float64(rssBefore)/1024, float64(rss)/1024, per)
		return
	}

	// Creates at a fixed rate, each stamped just before its request.
	cpu0, wall0 := srv.CPU(), time.Now()
	self0 := benchproc.SelfCPU()
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	n := 0
	end := time.Now().Add(*duration)
	hc := &http.Client{Timeout: 30 * time.Second}
	for time.Now().Before(end) && n < maxEvents {
		<-tick.C
		body := map[string]any{"seq": n, "ts": strconv.FormatInt(time.Now().UnixNano(), 10)}
		if userIDs != nil {
			body["owner"] = userIDs[n%len(userIDs)]
		}
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", base+"/api/collections/feed/records", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", su)
		res, err := hc.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			log.Fatalf("create = %d", res.StatusCode)
		}
		n++
	}
	tick.Stop()
	createdAt := time.Now()
	expected := int64(0)
	for i := range cls {
		for s := range n {
			if allowed(i, s) {
				expected++
			}
		}
	}
	for time.Since(createdAt) < 15*time.Second && delivered.Load() < expected {
		time.Sleep(20 * time.Millisecond)
	}
	wall := time.Since(wall0).Seconds()
	cpu := srv.CPU() - cpu0
	self := benchproc.SelfCPU() - self0
	time.Sleep(500 * time.Millisecond) // late duplicates would show now

	missing, dup, leaked := 0, 0, 0
	for i, c := range cls {
		c.mu.Lock()
		for s := range n {
			got := c.seen[s]
			switch {
			case !allowed(i, s) && got > 0:
				leaked++
			case allowed(i, s) && got == 0:
				missing++
			case got > 1:
				dup++
			}
		}
		c.mu.Unlock()
	}
	p50, p99, max := lat.quantile(0.5), lat.quantile(0.99), lat.quantile(1)
	fmt.Printf("RESULT scenario=%s clients=%d creates=%d rate=%d/s deliveries=%d/%d deliveries_per_s=%.0f p50=%v p99=%v max=%v server_cpu=%.0f%% bench_cpu=%.0f%% server_rss=%.1fMiB missing=%d duplicate=%d leaked=%d evicted_or_dropped=%d\n",
		*scenario, *clients, n, *rate, delivered.Load(), expected, float64(delivered.Load())/wall, p50, p99, max,
		100*cpu/wall, 100*self/wall, float64((srv.RSS()>>10))/1024, missing, dup, leaked, dropped.Load())
}

// allowed says whether client i may see record seq s.
func allowed(i, s int) bool {
	if *scenario != "owner" {
		return true
	}
	return i%*users == s%*users
}

var (
	delivered, dropped atomic.Int64
	lat                hist
)

// hist is a lock-free latency histogram with 50µs buckets up to 60s.
type hist struct{ b [1200001]atomic.Int64 }

func (h *hist) add(d time.Duration) {
	i := int(d / (50 * time.Microsecond))
	i = min(max(i, 0), len(h.b)-1)
	h.b[i].Add(1)
}

func (h *hist) quantile(q float64) time.Duration {
	var total int64
	for i := range h.b {
		total += h.b[i].Load()
	}
	if total == 0 {
		return 0
	}
	want := int64(q*float64(total) + 0.5)
	want = max(want, 1)
	var acc int64
	for i := range h.b {
		acc += h.b[i].Load()
		if acc >= want {
			return time.Duration(i+1) * 50 * time.Microsecond
		}
	}
	return 0
}

type client struct {
	mu   sync.Mutex
	seen []uint8
}

var subClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}

// connect opens a raw SSE stream, waits for PB_CONNECT, subscribes, and
// reads events in the background.
func connect(addr, base, token string, maxEvents int) *client {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /api/realtime HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", addr)
	res, err := http.ReadResponse(bufio.NewReaderSize(conn, 1024), nil)
	if err != nil || res.StatusCode != 200 {
		log.Fatalf("connect: %v %v", err, res)
	}
	br := bufio.NewReaderSize(res.Body, 2048)
	c := &client{seen: make([]uint8, maxEvents)}
	var id string
	for id == "" {
		line, err := br.ReadString('\n')
		if err != nil {
			log.Fatal(err)
		}
		if strings.HasPrefix(line, "id:") {
			id = strings.TrimSpace(line[3:])
		}
	}
	b, _ := json.Marshal(map[string]any{"clientId": id, "subscriptions": []string{"feed/*"}})
	req, _ := http.NewRequest("POST", base+"/api/realtime", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	sres, err := subClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	io.Copy(io.Discard, sres.Body)
	sres.Body.Close()
	if sres.StatusCode != 204 {
		log.Fatalf("subscribe = %d", sres.StatusCode)
	}
	go c.read(br)
	return c
}

var (
	seqKey = []byte(`"seq":`)
	tsKey  = []byte(`"ts":"`)
)

func (c *client) read(br *bufio.Reader) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if err == bufio.ErrBufferFull {
				log.Fatal("event longer than the read buffer")
			}
			dropped.Add(1)
			return
		}
		if !bytes.HasPrefix(line, []byte("data:")) {
			continue
		}
		now := time.Now().UnixNano()
		i := bytes.Index(line, tsKey)
		j := bytes.Index(line, seqKey)
		if i < 0 || j < 0 {
			continue
		}
		ts := line[i+len(tsKey):]
		ts = ts[:bytes.IndexByte(ts, '"')]
		sent, _ := strconv.ParseInt(string(ts), 10, 64)
		sq := line[j+len(seqKey):]
		k := 0
		for k < len(sq) && sq[k] >= '0' && sq[k] <= '9' {
			k++
		}
		s, _ := strconv.Atoi(string(sq[:k]))
		lat.add(time.Duration(now - sent))
		delivered.Add(1)
		c.mu.Lock()
		if s < len(c.seen) && c.seen[s] < 255 {
			c.seen[s]++
		}
		c.mu.Unlock()
	}
}

// raiseNoFile lifts the soft open-file limit to the hard one: every
// client is a socket here (and the server, a child, inherits it).
func raiseNoFile() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		log.Printf("raise RLIMIT_NOFILE: %v", err)
	}
	if int(l.Cur) < *clients+512 {
		log.Printf("warning: RLIMIT_NOFILE %d < clients+512; raise the hard limit (ulimit -Hn)", l.Cur)
	}
}

type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func call(method, url, token string, body any) map[string]any {
	for attempt := 0; ; attempt++ {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, url, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == 429 && attempt < 30 {
			time.Sleep(time.Second)
			continue
		}
		if res.StatusCode != 200 {
			log.Fatalf("%s %s = %d %s", method, url, res.StatusCode, raw)
		}
		var out map[string]any
		json.Unmarshal(raw, &out)
		return out
	}
}

func authToken(base, coll, email, pass string) string {
	out := call("POST", base+"/api/collections/"+coll+"/auth-with-password", "", map[string]any{"identity": email, "password": pass})
	return out["token"].(string)
}
