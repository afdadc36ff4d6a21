package realtime

import (
	"net/http"
	"time"
)

// Serve streams c's events as Server-Sent Events until the client goes
// away, is disconnected by the hub (too slow, shutdown) or the request
// ends; then it unregisters c. Every message is
// "id:<clientId>\nevent:<name>\ndata:<json>\n\n", the first being
// PB_CONNECT; idle streams get a comment line every Heartbeat.
func (c *Client) Serve(w http.ResponseWriter, r *http.Request) {
	h := c.hub
	defer h.remove(c, "")
	rc := http.NewResponseController(w)
	// The server's ReadTimeout would otherwise end a long-lived stream.
	_ = rc.SetReadDeadline(time.Time{})
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
	hdr.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)

	buf := make([]byte, 0, 256)
	buf = appendFrame(buf, c.id, "PB_CONNECT", `{"clientId":"`+c.id+`","cursor":"`+FormatCursor(c.Cursor())+`"}`)
	// sent is the highest cursor this stream has written.
	var sent int64
	write := func(b []byte, timeout time.Duration) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write(buf, h.cfg.WriteTimeout) {
		return
	}
	heartbeat := time.NewTicker(h.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.Context().Done():
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
