package realtime

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/strata-run/strata"
)

// WSOptions connect the WebSocket transport to the HTTP layer.
type WSOptions struct {
	// Auth is the identity of the upgrade request (its Authorization
	// header), used by messages that carry no authorization of their own.
	Auth *strata.Record
	// Authenticate resolves a message's "authorization" token (nil when
	// invalid: the message then counts as a guest's, as over HTTP).
	Authenticate func(ctx context.Context, token string) *strata.Record
	// Error shapes an error as the HTTP API would answer it.
	Error func(err error) (status int, body any)
}

// inheritAuth stands for "the identity the client is bound to".
var inheritAuth = new(strata.Record)

// maxWSMessage bounds one client message: 1000 topics of 2500 bytes.
const maxWSMessage = 3 << 20

// wsIn is a client message (docs/realtime.md).
type wsIn struct {
	Type          string   `json:"type"`
	ID            any      `json:"id"`
	Subscriptions []string `json:"subscriptions"`
	Authorization string   `json:"authorization"`
	Resume        string   `json:"resume"`
}

// ServeWS upgrades the request and serves c over a WebSocket with the
// semantics of the SSE stream: the same subscriptions, rule checks,
// buffer bound and eviction, resume cursors. Every server message is a
// JSON text frame; see docs/realtime.md for the format.
func (c *Client) ServeWS(w http.ResponseWriter, r *http.Request, o WSOptions) {
	h := c.hub
	defer h.remove(c, "")
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// Identity travels in messages, never in cookies: any origin may
		// connect, as any origin may call the API (CORS *).
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	conn.SetReadLimit(maxWSMessage)
	c.EnableCursors()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()

	write := func(b []byte) bool {
		wctx, wcancel := context.WithTimeout(ctx, h.cfg.WriteTimeout)
		defer wcancel()
		return conn.Write(wctx, websocket.MessageText, b) == nil
	}
	if !write([]byte(`{"type":"connect","clientId":"` + c.id + `","cursor":"` + FormatCursor(c.Cursor()) + `"}`)) {
		return
	}
	go c.readWS(ctx, cancel, conn, write, o)

	var sent int64
	buf := make([]byte, 0, 256)
	heartbeat := time.NewTicker(h.cfg.Heartbeat)
	defer heartbeat.Stop()
	flush := func(evs []event) bool {
		for _, ev := range evs {
			buf = appendWSEvent(buf[:0], ev)
			if !write(buf) {
				return false
			}
			sent = max(sent, ev.seq)
		}
		if cap(buf) > 64<<10 {
			buf = make([]byte, 0, 256)
		}
		return true
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			status := websocket.StatusTryAgainLater
			if h.isClosed() {
				status = websocket.StatusGoingAway
			}
			reason := c.reason
			if len(reason) > 120 { // a close reason fits in a control frame
				reason = reason[:120]
			}
			conn.Close(status, reason)
			return
		case <-heartbeat.C:
			cur := c.Cursor()
			if !flush(c.take()) {
				return
			}
			sent = max(sent, cur)
			if !write([]byte(`{"type":"cursor","cursor":"` + FormatCursor(sent) + `"}`)) {
				return
			}
		case <-c.wake:
			if !flush(c.take()) {
				return
			}
			heartbeat.Reset(h.cfg.Heartbeat)
		}
	}
}

// readWS handles client messages until the connection fails.
func (c *Client) readWS(ctx context.Context, cancel context.CancelFunc, conn *websocket.Conn, write func([]byte) bool, o WSOptions) {
	defer cancel()
	var topics []string
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			return
		}
		var in wsIn
		if typ != websocket.MessageText || json.Unmarshal(data, &in) != nil {
			conn.Close(websocket.StatusUnsupportedData, "messages are JSON text")
			return
		}
		// A message without authorization acts as the identity the
		// socket is bound to (or the upgrade request's).
		auth := o.Auth
		if auth == nil {
			auth = inheritAuth
		}
		if in.Authorization != "" && o.Authenticate != nil {
			auth = o.Authenticate(ctx, in.Authorization)
		}
		next := topics
		switch in.Type {
		case "subscribe":
			next = union(topics, in.Subscriptions)
		case "unsubscribe":
			next = nil
			if in.Subscriptions != nil {
				next = minus(topics, in.Subscriptions)
			}
		default:
			err = strata.ValidationError("Unknown message type.", map[string]any{
				"type": strata.NewFieldError("validation_in_invalid", "Must be subscribe or unsubscribe.", nil)})
		}
		if err == nil {
			err = c.hub.SubscribeFrom(c.id, c.ip, auth, next, in.Resume)
		}
		id, _ := json.Marshal(in.ID)
		var reply []byte
		if err != nil {
			status, body := 500, any(map[string]any{"status": 500, "message": "Something went wrong while processing your request.", "data": map[string]any{}})
			if o.Error != nil {
				status, body = o.Error(err)
			}
			b, _ := json.Marshal(body)
			reply = []byte(`{"type":"error","id":` + string(id) + `,"status":` + strconv.Itoa(status) + `,"error":` + string(b) + `}`)
		} else {
			topics = next
			reply = []byte(`{"type":"ack","id":` + string(id) + `}`)
		}
		if !write(reply) {
			return
		}
	}
}

// appendWSEvent encodes one event as a server message.
func appendWSEvent(b []byte, ev event) []byte {
	if ev.name == "PB_RESYNC" {
		b = append(b, `{"type":"resync",`...)
		return append(b, ev.data[1:]...)
	}
	b = append(b, `{"type":"event","name":`...)
	name, _ := json.Marshal(ev.name)
	b = append(b, name...)
	b = append(b, `,"data":`...)
	b = append(b, ev.data...)
	if ev.seq > 0 {
		b = append(b, `,"cursor":"`...)
		b = strconv.AppendInt(b, ev.seq, 10)
		b = append(b, '"')
	}
	return append(b, '}')
}

func union(a, b []string) []string {
	out := append([]string(nil), a...)
	seen := make(map[string]bool, len(a))
	for _, t := range a {
		seen[t] = true
	}
	for _, t := range b {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

func minus(a, b []string) []string {
	drop := make(map[string]bool, len(b))
	for _, t := range b {
		drop[t] = true
	}
	out := []string{}
	for _, t := range a {
		if !drop[t] {
			out = append(out, t)
		}
	}
	return out
}

// isClosed reports whether the hub is shutting down.
func (h *Hub) isClosed() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.closed
}
