package realtime

import (
	"net"
	"net/http"
	"strings"
	"time"
)

// Serve streams c's events as Server-Sent Events until the client goes
// away, is disconnected by the hub (too slow, shutdown) or the request
// ends; then it unregisters c. Every message is
// "id:<clientId>\nevent:<name>\ndata:<json>\n\n", the first being
// PB_CONNECT; idle streams get a comment line every Heartbeat.
func (c *Client) Serve(w http.ResponseWriter, r *http.Request) {
	h := c.hub
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	if r.ProtoMajor == 1 && !h.cfg.NoHijack {
		// Take the socket from net/http: its per-connection goroutine,
		// buffers and request state go away, and the stream costs one
		// small writer goroutine and one parked reader (docs/realtime.md).
		if conn, brw, err := rc.Hijack(); err == nil {
			if brw.Reader.Buffered() > 0 {
				// A pipelined request after a stream: not ours to serve.
				conn.Close()
				h.remove(c, "")
				return
			}
			head := make([]byte, 0, 512)
			head = append(head, "HTTP/1.1 200 OK\r\n"...)
			hdr.Set("Connection", "close") // the body ends with the connection
			head = appendHeader(head, hdr)
			go c.serveConn(conn, head)
			return
		}
	}
	defer h.remove(c, "")
	// The server's ReadTimeout would otherwise end a long-lived stream.
	_ = rc.SetReadDeadline(time.Time{})
	hdr.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	c.stream(func(b []byte, timeout time.Duration) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}, nil, r.Context().Done())
}

// serveConn streams over a hijacked connection; head is the response
// head. A reader notices the client closing the connection.
func (c *Client) serveConn(conn net.Conn, head []byte) {
	h := c.hub
	defer h.remove(c, "")
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Time{})
	gone := make(chan struct{})
	go func() {
		var b [1]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				close(gone)
				return
			}
		}
	}()
	c.stream(func(b []byte, timeout time.Duration) bool {
		_ = conn.SetWriteDeadline(time.Now().Add(timeout))
		_, err := conn.Write(b)
		return err == nil
	}, head, gone)
}

func appendHeader(b []byte, hdr http.Header) []byte {
	for k, vs := range hdr {
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				continue
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}

// stream writes PB_CONNECT (after head, if any), then events and
// heartbeats, until gone is closed, the hub drops c or a write fails.
func (c *Client) stream(write func(b []byte, timeout time.Duration) bool, head []byte, gone <-chan struct{}) {
	h := c.hub
	buf := append(head, make([]byte, 0, 256)...)
	buf = appendFrame(buf, c.id, "PB_CONNECT", `{"clientId":"`+c.id+`","cursor":"`+FormatCursor(c.Cursor())+`"}`)
	// sent is the highest cursor this stream has written.
	var sent int64
	if !write(buf, h.cfg.WriteTimeout) {
		return
	}
	heartbeat := time.NewTicker(h.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-gone:
			return
		case <-c.done:
			if c.reason != "" {
				write([]byte(": disconnected: "+c.reason+"\n\n"), time.Second)
			}
			return
		case <-heartbeat.C:
			frame := []byte(":\n\n")
			if c.cursors.Load() {
				// Read the cursor before draining: every event up to it
				// is then written before PB_CURSOR is.
				cur := c.Cursor()
				buf = buf[:0]
				for _, ev := range c.take() {
					buf = appendFrame(buf, c.id, ev.name, c.withCursor(ev))
					sent = max(sent, ev.seq)
				}
				if cur > sent {
					sent = cur
					buf = appendFrame(buf, c.id, "PB_CURSOR", `{"cursor":"`+FormatCursor(cur)+`"}`)
				}
				if len(buf) > 0 {
					frame = buf
				}
			}
			if !write(frame, h.cfg.WriteTimeout) {
				return
			}
		case <-c.wake:
			evs := c.take()
			if len(evs) == 0 {
				continue
			}
			buf = buf[:0]
			for _, ev := range evs {
				buf = appendFrame(buf, c.id, ev.name, c.withCursor(ev))
				sent = max(sent, ev.seq)
			}
			if !write(buf, h.cfg.WriteTimeout) {
				return
			}
			if cap(buf) > 64<<10 {
				buf = make([]byte, 0, 256) // do not keep a burst's buffer
			}
			heartbeat.Reset(h.cfg.Heartbeat)
		}
	}
}

func appendFrame(b []byte, id, name, data string) []byte {
	b = append(b, "id:"...)
	b = append(b, id...)
	b = append(b, "\nevent:"...)
	b = append(b, name...)
	b = append(b, "\ndata:"...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}
