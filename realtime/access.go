package realtime

import (
	"context"
	"errors"
	"strings"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/filter"
	"github.com/strata-run/strata/service"
)

// access is one caller's right to see records of a collection: a rule
// (list or view) plus an optional client filter, prepared once and then
// applied to many records. It decides in memory with filter.Eval when
// neither expression needs other rows, and with one store query per batch
// of records otherwise, so the cost is per (rule, filter, caller) group,
// never per client.
type access struct {
	c      *strata.Collection
	req    *strata.RequestInfo
	always bool // superuser, or an empty rule without filter
	never  bool // rule nil for a non-superuser, or a filter it may not use
	exprs  []filter.Expr
	env    *filter.Env
	stored bool // some expression needs other rows
	// filters is the same condition for the store query.
	filters []strata.Filter
}

// newAccess prepares rule (nil: superusers only) and the client filter
// clientFilter (restricted as on list requests: @collection, @request and
// hidden fields make it match nothing) for req.
func newAccess(app *service.App, c *strata.Collection, req *strata.RequestInfo, rule *string, clientFilter string) *access {
	a := &access{c: c, req: req}
	su := req.IsSuperuser()
	if !su && rule == nil {
		a.never = true
		return a
	}
	a.env = &filter.Env{Collection: c, Schema: app.Schema(), Request: req}
	if !su && strings.TrimSpace(*rule) != "" {
		e, err := filter.ParseCached(*rule)
		if err != nil {
			a.never = true
			return a
		}
		a.exprs = append(a.exprs, e)
		a.filters = append(a.filters, strata.Filter{Expr: *rule})
	}
	if strings.TrimSpace(clientFilter) != "" {
		e, err := filter.ParseCached(clientFilter)
		if err != nil {
			a.never = true
			return a
		}
		// The client's filter obeys the limits of a list request's filter;
		// compiling it with those limits is how they are checked.
		check := *a.env
		check.Restricted = !su
		if _, err := filter.Compile(e, &check, &filter.Args{}); err != nil {
			a.never = true
			return a
		}
		a.exprs = append(a.exprs, e)
		a.filters = append(a.filters, strata.Filter{Expr: clientFilter, Restricted: !su})
	}
	if len(a.exprs) == 0 {
		a.always = true
		return a
	}
	for _, e := range a.exprs {
		if filter.NeedsStore(e, a.env) {
			a.stored = true
		}
	}
	return a
}

// inMemory decides for r without the store; decided is false when the
// store must be asked.
func (a *access) inMemory(r *strata.Record) (ok, decided bool) {
	switch {
	case a.never:
		return false, true
	case a.always:
		return true, true
	case a.stored:
		return false, false
	}
	for _, e := range a.exprs {
		match, err := filter.Eval(e, a.env, r)
		if errors.Is(err, filter.ErrNeedsStore) {
			return false, false
		}
		if err != nil || !match {
			return false, true
		}
	}
	return true, true
}

// visible returns which of recs the caller may see. Records the store
// must decide are checked together in one query by id on their stored
// rows. snapshot marks records to judge as given instead (a deleted record
// as the change log kept it, or a past state of the record): the store
// reads them in place of the table, with relations and @collection read
// from the live tables.
func (a *access) visible(ctx context.Context, st strata.Reader, recs []*strata.Record, snapshot func(i int) bool) ([]bool, error) {
	out := make([]bool, len(recs))
	var ask []string
	var gone []int
	idx := map[string][]int{}
	for i, r := range recs {
		ok, decided := a.inMemory(r)
		if decided {
			out[i] = ok
			continue
		}
		if snapshot != nil && snapshot(i) {
			gone = append(gone, i)
			continue
		}
		id := r.ID()
		if _, dup := idx[id]; !dup {
			ask = append(ask, id)
		}
		idx[id] = append(idx[id], i)
	}
	// The change being delivered is committed on the primary; a lagging
	// replica would not have the row (or, for a delete, the related rows
	// the rule reads) yet and the event would be dropped.
	ctx = strata.WithReadAfter(ctx, strata.ReadLatest)
	if err := a.visibleSnapshots(ctx, st, recs, gone, out); err != nil {
		return nil, err
	}
	if len(ask) == 0 {
		return out, nil
	}
	got, err := st.FindRecords(ctx, &strata.RecordQuery{Collection: a.c, Schema: a.env.Schema, Request: a.req,
		Filters: a.filters, IDs: ask})
	if err != nil {
		return nil, err
	}
	for _, r := range got {
		for _, i := range idx[r.ID()] {
			out[i] = true
		}
	}
	return out, nil
}

// maxSnapshotValues bounds the bind values (rows × fields) of one snapshot
// query, well below SQLite's and PostgreSQL's parameter limits.
const maxSnapshotValues = 10000

// visibleSnapshots sets out[i] for the records recs[i], i in which, that
// pass the access condition as snapshots. Each query holds distinct ids
// (results are told apart by id; a record deleted twice in one batch, after
// being re-created with its id, or changed twice, goes to a later query) and a bounded number
// of rows.
func (a *access) visibleSnapshots(ctx context.Context, st strata.Reader, recs []*strata.Record, which []int, out []bool) error {
	per := max(1, min(100, maxSnapshotValues/max(1, len(a.c.Fields))))
	for len(which) > 0 {
		var batch []*strata.Record
		pos := map[string]int{}
		var rest []int
		for _, i := range which {
			id := recs[i].ID()
			if _, dup := pos[id]; dup || len(batch) == per {
				rest = append(rest, i)
				continue
			}
			pos[id] = i
			batch = append(batch, recs[i])
		}
		got, err := st.FindRecords(ctx, &strata.RecordQuery{Collection: a.c, Schema: a.env.Schema, Request: a.req,
			Filters: a.filters, Snapshot: batch})
		if err != nil {
			return err
		}
		for _, r := range got {
			if i, ok := pos[r.ID()]; ok {
				out[i] = true
			}
		}
		which = rest
	}
	return nil
}
