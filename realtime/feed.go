package realtime

import (
	"context"
	"strconv"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/service"
)

// Feed limits: items per page, and change-log entries one request reads
// (of all collections) before it answers with what it found so far.
const (
	DefaultFeedLimit = 100
	MaxFeedLimit     = 1000
	maxFeedScan      = 20000
)

// FeedItem is one entry of a collection's change feed. Record is the
// record as the caller may see it after the change, nil for a delete
// (a tombstone: only the id).
type FeedItem struct {
	Seq      int64        `json:"seq"`
	Action   string       `json:"action"`
	RecordID string       `json:"recordId"`
	Record   *service.Doc `json:"record"`
	Time     string       `json:"time"`
}

// FeedPage is one response of the change feed; Cursor is passed as
// since to get what follows.
type FeedPage struct {
	Items  []FeedItem `json:"items"`
	Cursor string     `json:"cursor"`
}

// ParseCursor reads a since value ("" and "0" are the start of the log).
func ParseCursor(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, strata.ValidationError("Something went wrong while processing your request.", map[string]any{
			"since": strata.NewFieldError("validation_invalid_cursor", "Must be a cursor returned by this feed, or 0.", nil)})
	}
	return n, nil
}

// Changes returns the changes of collection c after cursor since, in
// commit order, keeping only the records req may list under c's listRule
// (judged on the record as the change left it; for a delete, as it was
// before; rows the rule reads in other collections as they are now). A cursor older than the retained log is refused with
// validation_cursor_expired: the client must refetch the collection and
// start again from the cursor that refetch began at.
func Changes(ctx context.Context, app *service.App, req *strata.RequestInfo, c *strata.Collection, since int64, limit int) (*FeedPage, error) {
	su := req.IsSuperuser()
	if !su && c.ListRule == nil {
		return nil, strata.Errorf(strata.EForbidden, "Only superusers can perform this action.")
	}
	if limit <= 0 {
		limit = DefaultFeedLimit
	}
	limit = min(limit, MaxFeedLimit)
	st := app.Store()
	if since > 0 {
		first, err := st.Changes(ctx, 0, 1)
		if err != nil {
			return nil, err
		}
		if len(first) > 0 && first[0].Seq > since+1 {
			return nil, strata.ValidationError("The cursor is older than the retained change log; refetch the collection.", map[string]any{
				"since": strata.NewFieldError("validation_cursor_expired", "The cursor is older than the retained change log.", nil)})
		}
	}
	acc := newAccess(app, c, req, c.ListRule, "")
	page := &FeedPage{Items: []FeedItem{}}
	cursor, scanned := since, 0
	for len(page.Items) < limit && scanned < maxFeedScan {
		chs, err := st.Changes(ctx, cursor, 1000)
		if err != nil {
			return nil, err
		}
		if len(chs) == 0 {
			break
		}
		scanned += len(chs)
		// Keep this collection's entries, then decide access for all of
		// them at once (one store query at most).
		var mine []strata.Change
		var recs []*strata.Record
		end := chs[len(chs)-1].Seq
		for _, ch := range chs {
			if ch.CollectionID != c.ID {
				continue
			}
			r, err := decodeRecord(c, ch.Record)
			if err != nil {
				continue
			}
			mine = append(mine, ch)
			recs = append(recs, r)
		}
		// Each entry is judged on the record as that change left it, never
		// on the current row: an old state must not reach callers who
		// can see only a later one (nor a deleted record be unjudgeable).
		ok, err := acc.visible(ctx, st, recs, func(int) bool { return true })
		if err != nil {
			return nil, err
		}
		for i, ch := range mine {
			if !ok[i] {
				continue
			}
			it := FeedItem{Seq: ch.Seq, Action: ch.Action, RecordID: ch.RecordID, Time: strata.FormatDate(ch.Time)}
			if ch.Action != strata.ActionDelete {
				doc, err := app.ExportOne(ctx, req, recs[i], false)
				if err != nil {
					return nil, err
				}
				it.Record = doc
			}
			page.Items = append(page.Items, it)
			if len(page.Items) == limit {
				end = ch.Seq
				break
			}
		}
		cursor = end
		if len(chs) < 1000 {
			break
		}
	}
	page.Cursor = strconv.FormatInt(cursor, 10)
	return page, nil
}
