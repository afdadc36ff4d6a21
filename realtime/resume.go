package realtime

import (
	"context"
	"strconv"
	"time"

	"github.com/strata-run/strata"
)

// A cursor is a position in the change log: the Seq of the last change a
// client has been given (or that concerned it not). It is the same number
// the change feed uses, written in decimal; clients treat it as opaque.
// It is not signed: a replay is filtered by the client's rights, each
// change judged on the record as it left it exactly as the change feed
// judges it, so a forged cursor reveals nothing the feed would not, and
// the window bounds the work it can cause.

// FormatCursor writes a cursor.
func FormatCursor(seq int64) string { return strconv.FormatInt(seq, 10) }

// ParseResume reads a resume cursor.
func ParseResume(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, strata.ValidationError("Something went wrong while processing your request.", map[string]any{
			"resume": strata.NewFieldError("validation_invalid_cursor", "Must be a cursor this server sent.", nil)})
	}
	return n, nil
}

// EnableCursors makes c's events carry their change-log cursor and its
// idle heartbeats PB_CURSOR events. Call it before Serve.
func (c *Client) EnableCursors() { c.cursors.Store(true) }

// ResumeFrom asks for the changes after cursor to be replayed to c once
// its first subscribe request says what it wants; until then no live
// event reaches c. It implies EnableCursors. Call it before Serve.
func (c *Client) ResumeFrom(cursor string) error {
	from, err := ParseResume(cursor)
	if err != nil {
		return err
	}
	c.cursors.Store(true)
	c.hub.mu.Lock()
	defer c.hub.mu.Unlock()
	if c.resume == resumeNone {
		c.resume, c.resumeFrom = resumeWait, from
	}
	return nil
}

// Cursor returns the cursor c may resume from right now: everything up to
// it has been queued to c (or did not concern it).
func (c *Client) Cursor() int64 {
	h := c.hub
	h.mu.RLock()
	defer h.mu.RUnlock()
	if c.resume == resumeWait || c.resume == resumeQueued {
		return c.resumeFrom
	}
	return max(h.pos.Load(), c.floor)
}

// queueResume hands c to the Run loop. h.mu is held.
func (h *Hub) queueResume(c *Client) {
	h.rmu.Lock()
	h.resumeQ = append(h.resumeQ, c)
	h.rmu.Unlock()
	select {
	case h.resumeWake <- struct{}{}:
	default:
	}
}

// runResumes replays to every queued client. It runs on the Run loop, so
// no live dispatch interleaves: a client held back since its cursor was
// set gets the changes up to pos from the log, then live ones after pos.
func (h *Hub) runResumes(ctx context.Context) {
	h.rmu.Lock()
	q := h.resumeQ
	h.resumeQ = nil
	h.rmu.Unlock()
	for _, c := range q {
		h.resumeClient(ctx, c)
	}
}

func (h *Hub) resumeClient(ctx context.Context, c *Client) {
	h.mu.RLock()
	from := c.resumeFrom
	h.mu.RUnlock()
	to := h.pos.Load()
	evs, why := h.replay(ctx, c, from, to)
	h.mu.Lock()
	c.resume = resumeDone
	if from > to {
		c.floor = from
	}
	h.mu.Unlock()
	if why != "" {
		h.resynced.Add(1)
		c.push([]event{{name: "PB_RESYNC", data: `{"cursor":"` + FormatCursor(to) + `","reason":"` + why + `"}`}})
		return
	}
	h.resumed.Add(1)
	c.push(evs)
}

// replay renders the events c would have received for the changes in
// (from, to]; why is non-empty when the client must refetch instead.
func (h *Hub) replay(ctx context.Context, c *Client, from, to int64) (evs []event, why string) {
	if from >= to {
		return nil, ""
	}
	if to-from > h.cfg.ResumeWindow {
		return nil, "more than " + strconv.FormatInt(h.cfg.ResumeWindow, 10) + " changes since the cursor"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st := h.app.Store()
	emit := func(_ *Client, ev event) { evs = append(evs, ev) }
	first := true
	for cur := from; cur < to; {
		chs, err := st.Changes(ctx, cur, 1000)
		if err != nil {
			h.log.Warn("realtime: replay", "err", err)
			return nil, "the change log could not be read"
		}
		if len(chs) == 0 {
			return nil, "the change log does not reach the cursor"
		}
		if first {
			first = false
			if chs[0].Seq != from+1 {
				return nil, "the cursor is older than the retained change log"
			}
			if time.Since(chs[0].Time) > h.cfg.ResumeMaxAge {
				return nil, "the cursor is older than " + h.cfg.ResumeMaxAge.String()
			}
		}
		for _, ch := range chs {
			if ch.Seq > to {
				break
			}
			cur = ch.Seq
			coll := h.app.Collection(ch.CollectionID)
			if coll == nil || len(ch.Record) == 0 {
				continue
			}
			groups := h.match(coll, ch, c)
			if len(groups) == 0 {
				continue
			}
			rec, err := decodeRecord(coll, ch.Record)
			if err != nil {
				continue
			}
			for _, g := range groups {
				h.deliverReplay(ctx, coll, rec, ch, g, emit)
			}
			if len(evs) > h.cfg.ClientBuffer {
				return nil, "more than " + itoa(h.cfg.ClientBuffer) + " events to replay"
			}
		}
		if len(chs) < 1000 {
			break
		}
	}
	return evs, ""
}

// push queues evs for c at once (a replay may exceed the buffer bound by
// design: it was checked against ClientBuffer already).
func (c *Client) push(evs []event) {
	if len(evs) == 0 {
		return
	}
	c.qmu.Lock()
	c.queue = append(c.queue, evs...)
	c.qmu.Unlock()
	c.hub.delivered.Add(int64(len(evs)))
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// withCursor returns ev's data with "cursor" added when c asked for
// cursors and ev is a change event.
func (c *Client) withCursor(ev event) string {
	if ev.seq == 0 || !c.cursors.Load() || len(ev.data) < 2 {
		return ev.data
	}
	return ev.data[:len(ev.data)-1] + `,"cursor":"` + FormatCursor(ev.seq) + `"}`
}

// Close unregisters a client that will not be served.
func (c *Client) Close() { c.hub.remove(c, "") }
