package realtime

import (
	"context"
	"time"

	"github.com/strata-run/strata"
)

// Run feeds the hub from the bus until ctx ends, then disconnects every
// client. Changes are handled in Seq order exactly once: batches from the
// bus wait in pending until the sequence before them is handled; a gap
// that stays open for GapWait, a Lost signal (the bus dropped batches
// because the hub fell behind) or the periodic Poll makes the hub read the
// change log from the last sequence it handled.
func (h *Hub) Run(ctx context.Context) {
	defer h.Close()
	sub := h.bus.Subscribe(0)
	defer sub.Close()
	next, err := h.logEnd(ctx)
	for err != nil {
		h.log.Warn("realtime: read change log end", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		next, err = h.logEnd(ctx)
	}
	h.pos.Store(next)
	next++
	pending := map[int64]strata.Change{}
	gap := time.NewTimer(time.Hour)
	gap.Stop()
	gapArmed := false
	poll := time.NewTicker(h.cfg.Poll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case batch := <-sub.C():
			for _, ch := range batch {
				if ch.Seq >= next {
					pending[ch.Seq] = ch
				}
			}
			next = h.drain(ctx, next, pending)
		case <-sub.Lost():
			h.log.Warn("realtime: bus dropped changes, catching up from the change log", "after", next-1)
			next = h.catchUp(ctx, next, pending)
		case <-gap.C:
			gapArmed = false
			next = h.catchUp(ctx, next, pending)
		case <-poll.C:
			next = h.catchUp(ctx, next, pending)
		case <-h.resumeWake:
			h.runResumes(ctx)
		}
		if len(pending) > 0 && !gapArmed {
			gap.Reset(h.cfg.GapWait)
			gapArmed = true
		}
	}
}

// logEnd returns the last sequence in the change log.
func (h *Hub) logEnd(ctx context.Context) (int64, error) {
	return h.app.Store().LastChangeSeq(ctx)
}

// drain handles the run of pending changes that starts at next.
func (h *Hub) drain(ctx context.Context, next int64, pending map[int64]strata.Change) int64 {
	var run []strata.Change
	for {
		ch, ok := pending[next]
		if !ok {
			break
		}
		delete(pending, next)
		run = append(run, ch)
		next++
	}
	if len(run) > 0 {
		h.dispatch(ctx, run)
	}
	return next
}

// catchUp reads the change log from next, which is the truth: whatever it
// holds is handled in order, and pending entries it passed are dropped.
func (h *Hub) catchUp(ctx context.Context, next int64, pending map[int64]strata.Change) int64 {
	for {
		chs, err := h.app.Store().Changes(ctx, next-1, 1000)
		if err != nil {
			if ctx.Err() == nil {
				h.log.Warn("realtime: read change log", "err", err)
			}
			return next
		}
		if len(chs) == 0 {
			break
		}
		h.dispatch(ctx, chs)
		next = chs[len(chs)-1].Seq + 1
		if len(chs) < 1000 {
			break
		}
	}
	for seq := range pending {
		if seq < next {
			delete(pending, seq)
		}
	}
	return h.drain(ctx, next, pending)
}

// target is one subscription that matches a change.
type target struct {
	c    *Client
	sub  *subscription
	auth *strata.Record
}

// group is the targets that share rule, options and auth identity: their
// access is decided and their event rendered once.
type group struct {
	list    bool // "/*" (listRule) rather than "/id" (viewRule)
	sub     *subscription
	auth    *strata.Record
	members []target
}

// dispatch delivers changes, in order, to the clients allowed to see them.
func (h *Hub) dispatch(ctx context.Context, changes []strata.Change) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, ch := range changes {
		if !ch.Time.IsZero() {
			h.lag.Observe(max(time.Since(ch.Time), 0).Seconds())
		}
		h.dispatchOne(ctx, ch)
		h.pos.Store(ch.Seq)
	}
}

func (h *Hub) dispatchOne(ctx context.Context, ch strata.Change) {
	c := h.app.Collection(ch.CollectionID)
	if c == nil || len(ch.Record) == 0 {
		return
	}
	if c.IsAuth() && ch.Action != strata.ActionCreate {
		h.rebind(c, ch)
	}
	groups := h.match(c, ch, nil)
	if len(groups) == 0 {
		return
	}
	rec, err := decodeRecord(c, ch.Record)
	if err != nil {
		h.log.Warn("realtime: skip change", "seq", ch.Seq, "err", err)
		return
	}
	for _, g := range groups {
		h.deliver(ctx, c, rec, ch, g, (*Client).send)
	}
}

// match finds the local subscriptions a change concerns, grouped. With
// only set, just that client's (a replay); otherwise every client's that
// is not waiting for a replay and has not resumed past ch.
func (h *Hub) match(c *strata.Collection, ch strata.Change, only *Client) []*group {
	keys := [2]string{lower(c.ID), lower(c.Name)}
	byKey := map[string]*group{}
	var out []*group
	h.mu.RLock()
	defer h.mu.RUnlock()
	for i, k := range keys {
		if i == 1 && k == keys[0] {
			break
		}
		for cl := range h.index[k] {
			if only != nil && cl != only {
				continue
			}
			if only == nil && (cl.resume == resumeWait || cl.resume == resumeQueued || ch.Seq <= cl.floor) {
				continue
			}
			for _, s := range cl.subs {
				if s.collection != k || (s.recordID != "" && s.recordID != ch.RecordID) {
					continue
				}
				list := s.recordID == ""
				gk := s.options + "\x00" + authKey(cl.auth)
				if list {
					gk = "l" + gk
				} else {
					gk = "v" + gk
				}
				g := byKey[gk]
				if g == nil {
					g = &group{list: list, sub: s, auth: cl.auth}
					byKey[gk] = g
					out = append(out, g)
				}
				g.members = append(g.members, target{c: cl, sub: s, auth: cl.auth})
			}
		}
	}
	return out
}

// deliver checks a group's access to rec, a live change, and sends it the
// event.
func (h *Hub) deliver(ctx context.Context, c *strata.Collection, rec *strata.Record, ch strata.Change, g *group, emit func(*Client, event)) {
	h.deliverAs(ctx, c, rec, ch, g, false, emit)
}

// deliverReplay is deliver for a change replayed from the log to a
// resuming client.
func (h *Hub) deliverReplay(ctx context.Context, c *strata.Collection, rec *strata.Record, ch strata.Change, g *group, emit func(*Client, event)) {
	h.deliverAs(ctx, c, rec, ch, g, true, emit)
}

func (h *Hub) deliverAs(ctx context.Context, c *strata.Collection, rec *strata.Record, ch strata.Change, g *group, replay bool, emit func(*Client, event)) {
	action := ch.Action
	req := &strata.RequestInfo{Auth: g.auth, Method: "GET", Context: strata.ContextRealtime,
		Query: g.sub.query, Headers: g.sub.headers}
	rule := c.ViewRule
	if g.list {
		rule = c.ListRule
	}
	acc := newAccess(h.app, c, req, rule, g.sub.query["filter"])
	// A deleted record is judged on the row the change log kept. A live
	// create or update is judged on its stored row, as PocketBase checks
	// live events. A replayed one may be long superseded: the stored row
	// would show its old content to whoever may see the current state (and
	// hide it from whoever could see it then), so it is judged on the
	// record as that change left it, as the change feed does.
	snap := replay || action == strata.ActionDelete
	ok, err := acc.visible(ctx, h.app.Store(), []*strata.Record{rec}, func(int) bool { return snap })
	if err != nil {
		h.log.Warn("realtime: check access", "collection", c.Name, "err", err)
		return
	}
	if !ok[0] {
		return
	}
	data, err := h.render(ctx, req, rec, action, g.sub.query["expand"], g.sub.query["fields"])
	if err != nil {
		h.log.Warn("realtime: render event", "collection", c.Name, "err", err)
		return
	}
	for _, m := range g.members {
		emit(m.c, event{name: m.sub.name, data: data, seq: ch.Seq})
	}
}

// render encodes {"record":…,"action":…} with the record exported for req
// (hidden fields and email visibility as on GET), expanded and picked.
func (h *Hub) render(ctx context.Context, req *strata.RequestInfo, rec *strata.Record, action, expand, fields string) (string, error) {
	r := *rec
	r.Expand = nil
	if expand != "" {
		ereq := *req
		ereq.Context = strata.ContextDefault
		if err := h.app.Expand(ctx, &ereq, []*strata.Record{&r}, expand); err != nil {
			return "", err
		}
	}
	doc, err := h.app.ExportOne(ctx, req, &r, false)
	if err != nil {
		return "", err
	}
	b := make([]byte, 0, 512)
	b = append(b, `{"record":`...)
	if p := h.fields.Load(); fields != "" && p != nil {
		raw, err := jsonMarshal((*p)(doc, fields))
		if err != nil {
			return "", err
		}
		b = append(b, raw...)
	} else {
		b = doc.AppendJSON(b)
	}
	b = append(b, `,"action":"`...)
	b = append(b, action...)
	b = append(b, `"}`...)
	return string(b), nil
}

// rebind keeps stream auth bindings current when an auth record changes:
// a deleted record, or a new tokenKey (password or email change), drops
// the binding to guest; any other update refreshes the record rules see.
func (h *Hub) rebind(c *strata.Collection, ch strata.Change) {
	key := c.ID + "/" + ch.RecordID
	var fresh *strata.Record
	if ch.Action == strata.ActionUpdate {
		fresh, _ = decodeRecord(c, ch.Record)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, cl := range h.clients {
		if cl.auth == nil || authKey(cl.auth) != key {
			continue
		}
		if fresh == nil || fresh.String("tokenKey") != cl.auth.String("tokenKey") {
			cl.auth = nil
		} else {
			cl.auth = fresh
		}
	}
}
