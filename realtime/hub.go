// Package realtime is Strata's realtime hub: PocketBase's subscription
// protocol (API.md §8) over Server-Sent Events, fed by the bus, with every
// event checked against the subscriber's rights the way a GET would be.
//
// Changes come from strata.Bus in commit order (re-ordered by Seq, gaps
// filled from the change log), are matched to local subscriptions, grouped
// by (rule, options, auth identity), checked and rendered once per group,
// and queued to each client's bounded buffer. A client that lets its
// buffer fill is disconnected; nobody else, and no writer, waits for it.
package realtime

import (
	"crypto/rand"
	"encoding/json"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/service"
)

// Limits of the subscribe request (API.md §8.2).
const (
	MaxClientIDLen = 255
	MaxTopicLen    = 2500
)

// Config tunes a Hub; zero values take the defaults noted.
type Config struct {
	// NodeID prefixes every client id this node hands out (NodeIDLen
	// alphanumerics), so that a subscribe request reaching another node
	// can be routed to the owner of the stream. Random when empty.
	NodeID string
	// ClientBuffer is how many events may wait for one client before it is
	// disconnected as too slow (default 256).
	ClientBuffer int
	// MaxSubscriptions per client (default 1000, as PocketBase).
	MaxSubscriptions int
	// MaxClientsPerIP bounds open streams per client IP (default 500;
	// negative: unlimited).
	MaxClientsPerIP int
	// Heartbeat is the interval of SSE comment lines that keep proxies
	// from closing idle streams (default 25s).
	Heartbeat time.Duration
	// WriteTimeout bounds one write to a client's socket (default 10s).
	WriteTimeout time.Duration
	// GapWait is how long a gap in the sequence of changes from the bus
	// may stay open before the hub reads it from the change log (default
	// 100ms); Poll is how often the hub reads the log anyway, to see
	// writes that never reached its bus (default 2s).
	GapWait, Poll time.Duration
	// NoHijack keeps SSE streams inside net/http instead of taking over
	// their HTTP/1 connections (more memory per stream).
	NoHijack bool
	// ResumeWindow is how many changes (of all collections) a resuming
	// client may be behind (default 10000); ResumeMaxAge how old the first
	// change it missed may be (default 15m). Beyond either, or when more
	// than ClientBuffer events would be replayed, it gets PB_RESYNC.
	ResumeWindow int64
	ResumeMaxAge time.Duration
	Logger       *slog.Logger
}

// NodeIDLen is the length of the node prefix of client ids.
const NodeIDLen = 8

// clientIDLen is PocketBase's client id length (40 alphanumerics).
const clientIDLen = 40

func (c *Config) defaults() {
	if c.ClientBuffer <= 0 {
		c.ClientBuffer = 256
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = 1000
	}
	if c.MaxClientsPerIP == 0 {
		c.MaxClientsPerIP = 500
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 25 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.GapWait <= 0 {
		c.GapWait = 100 * time.Millisecond
	}
	if c.Poll <= 0 {
		c.Poll = 2 * time.Second
	}
	if c.ResumeWindow <= 0 {
		c.ResumeWindow = 10000
	}
	if c.ResumeMaxAge <= 0 {
		c.ResumeMaxAge = 15 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if len(c.NodeID) != NodeIDLen || !alphanumeric(c.NodeID) {
		c.NodeID = randomAlnum(NodeIDLen)
	}
}

// FieldPicker applies a ?fields= value to an exported record, exactly as
// the HTTP layer does for GET responses.
type FieldPicker func(doc *service.Doc, fields string) any

// Hub is one node's realtime registry and fan-out. Create it with New,
// run it with Run.
type Hub struct {
	app    *service.App
	bus    strata.Bus
	cfg    Config
	log    *slog.Logger
	fields atomic.Pointer[FieldPicker]

	mu      sync.RWMutex
	clients map[string]*Client
	perIP   map[string]int
	// index maps a lower-case collection id or name, as written in topics,
	// to the clients with at least one topic on it.
	index  map[string]map[*Client]struct{}
	closed bool

	// pos is the Seq of the last change dispatched: every event for a
	// change up to pos is in its clients' queues.
	pos atomic.Int64
	// lag is the time from a change's commit to its dispatch here: the
	// bus's delivery plus the hub's own backlog.
	lag prometheus.Histogram
	// resumeQ holds clients whose replay the Run loop must do.
	rmu        sync.Mutex
	resumeQ    []*Client
	resumeWake chan struct{}

	// Counters for tests and metrics.
	delivered, evicted, resumed, resynced, connects atomic.Int64
}

// New returns a hub delivering the changes published on bus.
func New(app *service.App, bus strata.Bus, cfg Config) *Hub {
	cfg.defaults()
	return &Hub{app: app, bus: bus, cfg: cfg, log: cfg.Logger, clients: map[string]*Client{},
		perIP: map[string]int{}, index: map[string]map[*Client]struct{}{}, resumeWake: make(chan struct{}, 1),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "strata", Subsystem: "realtime", Name: "dispatch_lag_seconds",
			Help:    "Time from a change's commit (its change-log time) to this node's hub dispatching it: bus delay plus the hub's backlog.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		})}
}

// NodeID returns the prefix of the client ids this hub issues.
func (h *Hub) NodeID() string { return h.cfg.NodeID }

// OwnerNode returns the node id encoded in a client id ("" if malformed):
// a subscribe request for a client of another node goes to that node.
func OwnerNode(clientID string) string {
	if len(clientID) != clientIDLen || !alphanumeric(clientID) {
		return ""
	}
	return clientID[:NodeIDLen]
}

// SetFieldPicker installs the ?fields= picker used to shape events.
func (h *Hub) SetFieldPicker(p FieldPicker) { h.fields.Store(&p) }

// Clients returns the number of connected clients.
func (h *Hub) Clients() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.clients)
}

// Stats returns how many events were queued to clients and how many
// clients were disconnected for being too slow.
func (h *Hub) Stats() (delivered, evicted int64) { return h.delivered.Load(), h.evicted.Load() }

// Client is one connected SSE stream.
type Client struct {
	hub *Hub
	id  string
	ip  string

	qmu    sync.Mutex
	queue  []event
	wake   chan struct{} // capacity 1: the queue has events
	done   chan struct{} // closed when the client is removed
	once   sync.Once
	reason string // why done was closed; written before close(done)

	// cursors: the client asked for change-log cursors (?resume= or
	// ?cursors=1): its events carry "cursor" and idle heartbeats become
	// PB_CURSOR events.
	cursors atomic.Bool

	// Guarded by hub.mu.
	auth *strata.Record
	subs []*subscription
	// resume is the state of a requested replay: resumeNone, resumeWait
	// (a cursor is set, waiting for subscriptions; live events are held
	// back), resumeQueued (the Run loop will replay), resumeDone.
	resume     uint8
	resumeFrom int64
	// floor: changes up to this Seq are not delivered live (the client
	// resumed from a cursor ahead of this node).
	floor int64
}

const (
	resumeNone uint8 = iota
	resumeWait
	resumeQueued
	resumeDone
)

// ID returns the client id (the SSE id of every message).
func (c *Client) ID() string { return c.id }

type event struct {
	name string // the subscription string, byte for byte
	data string // shared by every client of a group
	seq  int64  // the change's Seq (0: not a change event)
}

// subscription is one parsed topic.
type subscription struct {
	name       string // as submitted
	collection string // lower-case id or name
	recordID   string // "" for "/*"
	options    string // raw options, part of the group key
	query      map[string]string
	headers    map[string]string
}

// Connect registers a new client for a stream from ip.
func (h *Hub) Connect(ip string) (*Client, error) {
	c := &Client{hub: h, ip: ip, wake: make(chan struct{}, 1), done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, strata.Errorf(strata.EUnavailable, "The server is shutting down.")
	}
	if h.cfg.MaxClientsPerIP > 0 && h.perIP[ip] >= h.cfg.MaxClientsPerIP {
		return nil, strata.Errorf(strata.ETooMany, "Too many realtime connections from this address.")
	}
	for {
		c.id = h.cfg.NodeID + randomAlnum(clientIDLen-NodeIDLen)
		if _, dup := h.clients[c.id]; !dup {
			break
		}
	}
	h.clients[c.id] = c
	h.perIP[ip]++
	h.connects.Add(1)
	return c, nil
}

// remove unregisters c and ends its stream with reason.
func (h *Hub) remove(c *Client, reason string) {
	h.mu.Lock()
	if h.clients[c.id] == c {
		delete(h.clients, c.id)
		if h.perIP[c.ip]--; h.perIP[c.ip] <= 0 {
			delete(h.perIP, c.ip)
		}
		h.unindex(c)
		c.subs = nil
	}
	h.mu.Unlock()
	c.once.Do(func() {
		c.reason = reason
		close(c.done)
	})
}

func (h *Hub) unindex(c *Client) {
	for _, s := range c.subs {
		if set := h.index[s.collection]; set != nil {
			delete(set, c)
			if len(set) == 0 {
				delete(h.index, s.collection)
			}
		}
	}
}

// Close disconnects every client (they reconnect, to another node behind
// a load balancer) and refuses new ones.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	list := make([]*Client, 0, len(h.clients))
	for _, c := range h.clients {
		list = append(list, c)
	}
	h.mu.Unlock()
	for _, c := range list {
		h.remove(c, "server shutting down, reconnect")
	}
}

var (
	errUnknownClient = strata.Errorf(strata.ENotFound, "Missing or invalid client id.")
	errOtherIP       = strata.Errorf(strata.EInvalid, "Invalid realtime client.")
	errAuthMismatch  = strata.Errorf(strata.EForbidden, "The current and the previous request authorization don't match.")
)

// Subscribe replaces the subscriptions of client clientID (API.md §8.2).
// ip is the caller's address, auth its authenticated record (nil: guest):
// the first authenticated request binds the stream to that identity, and
// a later request with another identity is refused.
func (h *Hub) Subscribe(clientID, ip string, auth *strata.Record, topics []string) error {
	return h.SubscribeFrom(clientID, ip, auth, topics, "")
}

// SubscribeFrom is Subscribe with a resume cursor (docs/realtime.md): when
// resume is set and the client has not resumed yet, the changes after the
// cursor that these subscriptions would have delivered are replayed
// before any live event, or PB_RESYNC is sent when the cursor is outside
// the window.
func (h *Hub) SubscribeFrom(clientID, ip string, auth *strata.Record, topics []string, resume string) error {
	var from int64
	if resume != "" {
		var err error
		if from, err = ParseResume(resume); err != nil {
			return err
		}
	}
	switch {
	case clientID == "":
		return strata.ValidationError("Something went wrong while processing your request.", map[string]any{
			"clientId": strata.NewFieldError("validation_required", "Cannot be blank.", nil)})
	case len(clientID) > MaxClientIDLen:
		return strata.ValidationError("Something went wrong while processing your request.", map[string]any{
			"clientId": strata.NewFieldError("validation_length_out_of_range", "The length must be between 1 and 255.", nil)})
	case len(topics) > h.cfg.MaxSubscriptions:
		return strata.ValidationError("Something went wrong while processing your request.", map[string]any{
			"subscriptions": strata.NewFieldError("validation_length_too_long", "The length must be no more than "+itoa(h.cfg.MaxSubscriptions)+".", nil)})
	}
	subs := make([]*subscription, 0, len(topics))
	seen := map[string]bool{}
	for i, t := range topics {
		if len(t) > MaxTopicLen {
			return strata.ValidationError("Something went wrong while processing your request.", map[string]any{
				"subscriptions": map[string]any{itoa(i): strata.NewFieldError("validation_length_too_long", "The length must be no more than 2500.", nil)}})
		}
		// A line break would let a topic forge SSE fields: never echo it.
		if t == "" || seen[t] || strings.ContainsAny(t, "\r\n") {
			continue
		}
		seen[t] = true
		subs = append(subs, parseTopic(t))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.clients[clientID]
	if c == nil {
		return errUnknownClient
	}
	if c.ip != ip {
		return errOtherIP
	}
	if auth == inheritAuth {
		auth = c.auth // a WebSocket message without authorization
	}
	switch {
	case c.auth == nil:
		c.auth = auth // a guest stream may be upgraded
	case auth == nil || authKey(auth) != authKey(c.auth):
		return errAuthMismatch
	default:
		c.auth = auth // same identity: keep the freshest copy
	}
	if resume != "" && c.resume == resumeNone {
		c.resume, c.resumeFrom = resumeWait, from
		c.cursors.Store(true)
	}
	if c.resume == resumeWait {
		c.resume = resumeQueued
		h.queueResume(c)
	}
	h.unindex(c)
	c.subs = subs
	for _, s := range subs {
		set := h.index[s.collection]
		if set == nil {
			set = map[*Client]struct{}{}
			h.index[s.collection] = set
		}
		set[c] = struct{}{}
	}
	return nil
}

// parseTopic splits "coll/*", "coll/id" or legacy "coll", each with an
// optional "?options=<url-encoded JSON {query, headers}>".
func parseTopic(t string) *subscription {
	s := &subscription{name: t}
	topic, rawQuery, hasQuery := strings.Cut(t, "?")
	if hasQuery {
		if q, err := url.ParseQuery(rawQuery); err == nil {
			s.options = q.Get("options")
		}
	}
	coll, rest, _ := strings.Cut(topic, "/")
	s.collection = strings.ToLower(coll)
	if rest != "*" {
		s.recordID = rest
	}
	if s.options != "" {
		var o struct {
			Query   map[string]any `json:"query"`
			Headers map[string]any `json:"headers"`
		}
		if json.Unmarshal([]byte(s.options), &o) == nil {
			s.query = stringify(o.Query, false)
			s.headers = stringify(o.Headers, true)
		}
	}
	return s
}

// stringify turns option values into the strings @request.query/headers
// hold; header keys are snake_cased as on HTTP requests.
func stringify(m map[string]any, header bool) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if header {
			k = strings.ReplaceAll(strings.ToLower(k), "-", "_")
		}
		switch x := v.(type) {
		case string:
			out[k] = x
		case nil:
			out[k] = ""
		default:
			b, _ := json.Marshal(x)
			out[k] = string(b)
		}
	}
	return out
}

// authKey names an auth identity ("" for guests).
func authKey(r *strata.Record) string {
	if r == nil || r.Collection == nil {
		return ""
	}
	return r.Collection.ID + "/" + r.ID()
}

// send queues ev for c, or disconnects c when its buffer is full.
func (c *Client) send(ev event) {
	c.qmu.Lock()
	if len(c.queue) >= c.hub.cfg.ClientBuffer {
		c.qmu.Unlock()
		c.hub.evicted.Add(1)
		c.hub.remove(c, "too slow: more than "+itoa(c.hub.cfg.ClientBuffer)+" events waiting, reconnect")
		return
	}
	c.queue = append(c.queue, ev)
	c.qmu.Unlock()
	c.hub.delivered.Add(1)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// take returns the queued events, leaving the queue empty.
func (c *Client) take() []event {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	q := c.queue
	c.queue = nil
	return q
}

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// randomAlnum returns n random alphanumerics (rejection sampling keeps
// them uniform).
func randomAlnum(n int) string {
	out := make([]byte, 0, n)
	var buf [64]byte
	for len(out) < n {
		rand.Read(buf[:])
		for _, b := range buf {
			if b < 248 && len(out) < n { // 248 = 4*62
				out = append(out, alnum[b%62])
			}
		}
	}
	return string(out)
}

func alphanumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(alnum, rune(s[i])) {
			return false
		}
	}
	return true
}

func itoa(n int) string { return strconv.Itoa(n) }
