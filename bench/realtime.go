package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// RealtimeScenario is the fan-out scenario: creates on the seeded
// collection while Config.Subscribers SSE clients watch it.
const RealtimeScenario = "realtime"

// DefaultSubscribers is Config.Subscribers when zero.
const DefaultSubscribers = 100

// fanoutDrain bounds the wait, after the last create, for deliveries
// still on their way; whatever has not arrived by then is missing.
const fanoutDrain = 10 * time.Second

// fanoutLate is how long to keep listening once everything arrived, so
// that a duplicate sent right behind the original is still caught.
const fanoutLate = 250 * time.Millisecond

// Fanout is the delivery side of the realtime scenario. A delivery is one
// create's event reaching one subscriber; every subscriber must get every
// create that succeeded exactly once. Latencies are milliseconds from just
// before the create was sent to the event's receipt.
type Fanout struct {
	Subscribers int `json:"subscribers"`
	// ConnectSeconds is how long opening and subscribing every stream
	// took (before the load started).
	ConnectSeconds float64 `json:"connectSeconds"`
	// Creates is how many creates succeeded; Expected is Creates times
	// Subscribers, Received how many of those arrived (first copies).
	Creates  int64 `json:"creates"`
	Expected int64 `json:"expected"`
	Received int64 `json:"received"`
	// Missing + Duplicates + Disconnects are counted in Result.Errors.
	Missing     int64 `json:"missing"`
	Duplicates  int64 `json:"duplicates"`
	Disconnects int64 `json:"disconnects"` // streams the server ended early
	// Unexpected counts events of creates that reported a failure (for
	// instance a client timeout after the server committed).
	Unexpected int64 `json:"unexpected,omitempty"`
	// EventsPerSecond is deliveries over the time from the start of the
	// load to the last delivery.
	EventsPerSecond float64 `json:"eventsPerSecond"`
	Latency         Summary `json:"latency"`
	Percentiles     []Point `json:"percentiles"`
}

// fanout runs the subscribers of one realtime run and the creates they
// wait for. Each create's title carries a marker "<tag><seq>:<ns>" where
// ns is the send time in nanoseconds since start on the monotonic clock,
// so a subscriber computes latency without shared state and whatever the
// server does to field order or JSON spacing.
type fanout struct {
	tag    []byte // "rt:<random>:", unique to the run
	start  time.Time
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	subs   []*subscriber
	// streams carries the SSE requests only.
	streams *http.Transport

	seq       atomic.Int64 // next create's sequence number
	delivered atomic.Int64 // every delivery, duplicates included
	closing   atomic.Bool  // streams ending now are ours to end
	lastNs    atomic.Int64 // last delivery, ns since start

	mu      sync.Mutex
	hist    *hdrhistogram.Histogram // first deliveries, µs
	created bitset                  // creates that answered 2xx
	nCreate int64

	connect time.Duration
}

// subscriber is one SSE stream. Only its reader goroutine touches seen
// and dups until the stream is closed and the reader has returned.
type subscriber struct {
	body        io.ReadCloser
	seen        bitset
	dups        int64
	disconnects int64
}

type bitset []uint64

func (b *bitset) set(i int64) (was bool) {
	w := int(i / 64)
	for len(*b) <= w {
		*b = append(*b, 0)
	}
	m := uint64(1) << (i % 64)
	was = (*b)[w]&m != 0
	(*b)[w] |= m
	return was
}

func (b bitset) has(i int64) bool {
	w := int(i / 64)
	return w < len(b) && b[w]&(uint64(1)<<(i%64)) != 0
}

// startFanout opens cfg.Subscribers SSE streams and subscribes each to
// t.coll/* as a guest (the collection's listRule is public), as the JS and
// Dart SDKs do: GET /api/realtime, read PB_CONNECT's id, POST the topics.
func startFanout(ctx context.Context, cfg Config, t *target) (*fanout, error) {
	n := cfg.Subscribers
	if n <= 0 {
		n = DefaultSubscribers
	}
	// start precedes every send and every reader: stamps and receipts are
	// both offsets from it on the monotonic clock.
	f := &fanout{tag: []byte("rt:" + randomHex(6) + ":"), start: time.Now(), hist: newHist(), subs: make([]*subscriber, n)}
	f.ctx, f.cancel = context.WithCancel(context.WithoutCancel(ctx))
	// Streams must not share the request client: its Timeout would end
	// them, and they would take its idle connections.
	f.streams = &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true, ResponseHeaderTimeout: 30 * time.Second}
	streams := &http.Client{Transport: f.streams}
	began := time.Now()
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range min(n, 32) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				s, br, err := f.subscribe(streams, t)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("realtime subscriber %d: %w", i+1, err)
					}
					mu.Unlock()
					return
				}
				f.subs[i] = s
				f.wg.Go(func() { f.read(s, br) })
			}
		})
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		f.close()
		return nil, firstErr
	}
	f.connect = time.Since(began)
	return f, nil
}

// subscribe opens one stream and subscribes it; br reads the rest of it.
func (f *fanout) subscribe(streams *http.Client, t *target) (*subscriber, *bufio.Reader, error) {
	req, err := http.NewRequestWithContext(f.ctx, "GET", t.base+"/api/realtime", nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := streams.Do(req)
	if err != nil {
		return nil, nil, err
	}
	if res.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		res.Body.Close()
		err := fmt.Errorf("GET /api/realtime: %d %s", res.StatusCode, bytes.TrimSpace(raw))
		if res.StatusCode == http.StatusTooManyRequests {
			err = fmt.Errorf("%w (a Strata server allows 500 streams per address unless STRATA_REALTIME_CLIENTS_PER_IP is raised)", err)
		}
		return nil, nil, err
	}
	s := &subscriber{body: res.Body}
	br := bufio.NewReaderSize(res.Body, 16<<10)
	// The client id is the SSE id of PB_CONNECT (API.md §8.1).
	var id, event string
	for event != "PB_CONNECT" || id == "" {
		line, err := br.ReadString('\n')
		if err != nil {
			res.Body.Close()
			return nil, nil, fmt.Errorf("waiting for PB_CONNECT: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(line[3:])
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(line[6:])
		case line == "" && event != "PB_CONNECT":
			id, event = "", ""
		}
	}
	// Skip the rest of the PB_CONNECT frame (its data line).
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			res.Body.Close()
			return nil, nil, fmt.Errorf("reading PB_CONNECT: %w", err)
		}
		if strings.TrimRight(line, "\r\n") == "" {
			break
		}
	}
	b, _ := json.Marshal(map[string]any{"clientId": id, "subscriptions": []string{t.coll + "/*"}})
	sreq, err := http.NewRequestWithContext(f.ctx, "POST", t.base+"/api/realtime", bytes.NewReader(b))
	if err != nil {
		res.Body.Close()
		return nil, nil, err
	}
	sreq.Header.Set("Content-Type", "application/json")
	sres, err := t.client.Do(sreq)
	if err != nil {
		res.Body.Close()
		return nil, nil, err
	}
	raw, _ := io.ReadAll(sres.Body)
	sres.Body.Close()
	if sres.StatusCode < 200 || sres.StatusCode > 299 {
		res.Body.Close()
		return nil, nil, fmt.Errorf("POST /api/realtime: %d %s", sres.StatusCode, bytes.TrimSpace(raw))
	}
	return s, br, nil
}

// read consumes one stream until it ends, noting each marked event.
func (f *fanout) read(s *subscriber, br *bufio.Reader) {
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A long event (not one of ours: the marker is near the
			// start of a small record); skip to its end.
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			continue
		}
		if err != nil {
			if !f.closing.Load() {
				s.disconnects++
			}
			return
		}
		if !bytes.HasPrefix(line, []byte("data:")) {
			continue
		}
		seq, sent, ok := f.parseMarker(line)
		if !ok {
			continue
		}
		now := time.Since(f.start).Nanoseconds()
		f.delivered.Add(1)
		if s.seen.set(seq) {
			s.dups++
			continue
		}
		for {
			last := f.lastNs.Load()
			if now <= last || f.lastNs.CompareAndSwap(last, now) {
				break
			}
		}
		us := max((now-sent)/1000, histMin)
		f.mu.Lock()
		f.hist.RecordValue(min(us, histMax))
		f.mu.Unlock()
	}
}

// parseMarker finds "<tag><seq>:<ns>" in an event's data line.
func (f *fanout) parseMarker(line []byte) (seq, sent int64, ok bool) {
	i := bytes.Index(line, f.tag)
	if i < 0 {
		return 0, 0, false
	}
	rest := line[i+len(f.tag):]
	seq, rest, ok = leadingInt(rest)
	if !ok || len(rest) == 0 || rest[0] != ':' {
		return 0, 0, false
	}
	sent, _, ok = leadingInt(rest[1:])
	return seq, sent, ok
}

func leadingInt(b []byte) (int64, []byte, bool) {
	k := 0
	for k < len(b) && b[k] >= '0' && b[k] <= '9' {
		k++
	}
	n, err := strconv.ParseInt(string(b[:k]), 10, 64)
	return n, b[k:], err == nil
}

// create sends one marked create; it is the realtime scenario's "create".
func (f *fanout) create(ctx context.Context, t *target) (int, error) {
	seq := f.seq.Add(1) - 1
	body := fmt.Appendf(nil, `{"title":"%s%d:%d","n":%d,"body":"realtime fan-out"}`,
		f.tag, seq, time.Since(f.start).Nanoseconds(), seq)
	req, err := http.NewRequestWithContext(ctx, "POST", t.base+"/api/collections/"+t.coll+"/records", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := t.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err == nil && res.StatusCode >= 200 && res.StatusCode <= 299 {
		f.mu.Lock()
		f.created.set(seq)
		f.nCreate++
		f.mu.Unlock()
	}
	return res.StatusCode, err
}

// progress is the realtime part of the live progress line.
func (f *fanout) progress() string {
	f.mu.Lock()
	want := f.nCreate * int64(len(f.subs))
	f.mu.Unlock()
	return fmt.Sprintf("delivered %d/%d", f.delivered.Load(), want)
}

// finish waits for the deliveries still on their way (up to fanoutDrain),
// closes the streams and tallies what arrived.
func (f *fanout) finish(ctx context.Context) *Fanout {
	f.mu.Lock()
	want := f.nCreate * int64(len(f.subs))
	f.mu.Unlock()
	deadline := time.Now().Add(fanoutDrain)
	tick := time.NewTicker(10 * time.Millisecond)
	for f.delivered.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		<-tick.C
	}
	tick.Stop()
	if ctx.Err() == nil {
		time.Sleep(fanoutLate)
	}
	f.close()

	out := &Fanout{Subscribers: len(f.subs), ConnectSeconds: f.connect.Seconds()}
	f.mu.Lock()
	defer f.mu.Unlock()
	total := f.seq.Load()
	out.Creates = f.nCreate
	out.Expected = f.nCreate * int64(len(f.subs))
	for _, s := range f.subs {
		out.Duplicates += s.dups
		out.Disconnects += s.disconnects
		for seq := range total {
			switch got := s.seen.has(seq); {
			case f.created.has(seq) && got:
				out.Received++
			case f.created.has(seq):
				out.Missing++
			case got:
				out.Unexpected++
			}
		}
	}
	if last := time.Duration(f.lastNs.Load()); last > 0 {
		out.EventsPerSecond = float64(f.delivered.Load()) / last.Seconds()
	}
	out.Latency = summarize(f.hist)
	out.Percentiles = percentileCurve(f.hist)
	return out
}

// close ends every stream and waits for the readers.
func (f *fanout) close() {
	f.closing.Store(true)
	f.cancel()
	for _, s := range f.subs {
		if s != nil {
			s.body.Close()
		}
	}
	f.wg.Wait()
	f.streams.CloseIdleConnections()
}

// errors is the number of delivery failures, for Result.Errors.
func (o *Fanout) errors() int64 { return o.Missing + o.Duplicates + o.Disconnects }

// summary is the line added to ErrorSamples when deliveries failed.
func (o *Fanout) summary() string {
	return fmt.Sprintf("realtime: %d of %d deliveries missing, %d duplicated, %d streams ended by the server",
		o.Missing, o.Expected, o.Duplicates, o.Disconnects)
}
