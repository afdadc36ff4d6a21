package service

import (
	"context"
	"regexp"
	"strings"

	"github.com/strata-run/strata"
)

const (
	maxExpandDepth   = 6
	maxBackRelations = 1000
)

// expandTree is the parsed expand parameter: "a.b,a.c,d" → a{b,c}, d.
type expandTree map[string]expandTree

func parseExpand(s string) expandTree {
	t := expandTree{}
	for _, path := range strings.Split(s, ",") {
		path = strings.TrimSpace(path)
		if path == "" {
			continue
		}
		node := t
		for i, part := range strings.Split(path, ".") {
			if i >= maxExpandDepth || part == "" {
				break
			}
			next, ok := node[part]
			if !ok {
				next = expandTree{}
				node[part] = next
			}
			node = next
		}
	}
	return t
}

var viaRe = regexp.MustCompile(`^(\w+)_via_(\w+)$`)

// Expand loads the relations named by expand into each record's Expand.
// Every expanded record is checked against its own collection's viewRule
// for req: what a caller cannot view never appears in an expand.
func (a *App) Expand(ctx context.Context, req *strata.RequestInfo, recs []*strata.Record, expand string) error {
	if strings.TrimSpace(expand) == "" || len(recs) == 0 {
		return nil
	}
	ereq := &strata.RequestInfo{Context: strata.ContextExpand}
	if req != nil {
		cp := *req
		cp.Context = strata.ContextExpand
		ereq = &cp
	}
	return a.expand(ctx, ereq, recs, parseExpand(expand))
}

func (a *App) expand(ctx context.Context, req *strata.RequestInfo, recs []*strata.Record, tree expandTree) error {
	if len(tree) == 0 || len(recs) == 0 {
		return nil
	}
	c := recs[0].Collection
	for key, sub := range tree {
		if f := c.Field(key); f != nil && f.Type == strata.FieldRelation {
			if err := a.expandRelation(ctx, req, recs, f, sub); err != nil {
				return err
			}
			continue
		}
		if m := viaRe.FindStringSubmatch(key); m != nil {
			if err := a.expandBack(ctx, req, recs, key, m[1], m[2], sub); err != nil {
				return err
			}
		}
	}
	return nil
}

func setExpand(r *strata.Record, key string, v any) {
	if r.Expand == nil {
		r.Expand = map[string]any{}
	}
	if v != nil {
		r.Expand[key] = v
	}
}

// loadVisible loads the records matched by q that req may view.
func (a *App) loadVisible(ctx context.Context, req *strata.RequestInfo, q *strata.RecordQuery) ([]*strata.Record, bool, error) {
	target := q.Collection
	if !req.IsSuperuser() {
		if target.ViewRule == nil {
			return nil, false, nil
		}
		if strings.TrimSpace(*target.ViewRule) != "" {
			q.Filters = append(q.Filters, strata.Filter{Expr: *target.ViewRule})
		}
	}
	q.Schema, q.Request = a.Schema(), req
	recs, err := a.store.FindRecords(ctx, q)
	return recs, true, err
}

func (a *App) expandRelation(ctx context.Context, req *strata.RequestInfo, recs []*strata.Record, f *strata.Field, sub expandTree) error {
	target := a.Collection(f.CollectionID)
	if target == nil {
		return nil
	}
	var ids []string
	seen := map[string]bool{}
	for _, r := range recs {
		setExpand(r, f.Name, nil)
		for _, id := range r.Strings(f.Name) {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	loaded, ok, err := a.loadVisible(ctx, req, &strata.RecordQuery{Collection: target, IDs: ids})
	if err != nil || !ok {
		return ruleError(err)
	}
	if err := a.expand(ctx, req, loaded, sub); err != nil {
		return err
	}
	byID := make(map[string]*strata.Record, len(loaded))
	for _, r := range loaded {
		byID[r.ID()] = r
	}
	for _, r := range recs {
		if f.IsMultiple() {
			var list []*strata.Record
			for _, id := range r.Strings(f.Name) {
				if x, ok := byID[id]; ok {
					list = append(list, x)
				}
			}
			if len(list) > 0 {
				setExpand(r, f.Name, list)
			}
		} else if x, ok := byID[r.String(f.Name)]; ok {
			setExpand(r, f.Name, x)
		}
	}
	return nil
}

func (a *App) expandBack(ctx context.Context, req *strata.RequestInfo, recs []*strata.Record, key, collName, fieldName string, sub expandTree) error {
	c := recs[0].Collection
	src := a.Collection(collName)
	if src == nil {
		return nil
	}
	f := src.Field(fieldName)
	if f == nil || f.Type != strata.FieldRelation || f.CollectionID != c.ID {
		return nil
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID()
		setExpand(r, key, nil)
	}
	loaded, ok, err := a.loadVisible(ctx, req, &strata.RecordQuery{Collection: src, RelationField: f.Name, RelationIDs: ids,
		Limit: maxBackRelations * len(recs)})
	if err != nil || !ok {
		return ruleError(err)
	}
	if err := a.expand(ctx, req, loaded, sub); err != nil {
		return err
	}
	single := !f.IsMultiple() && uniquelyIndexed(src, f.Name)
	groups := map[string][]*strata.Record{}
	for _, x := range loaded {
		for _, id := range x.Strings(f.Name) {
			if len(groups[id]) < maxBackRelations {
				groups[id] = append(groups[id], x)
			}
		}
	}
	for _, r := range recs {
		g := groups[r.ID()]
		if len(g) == 0 {
			continue
		}
		if single {
			setExpand(r, key, g[0])
		} else {
			setExpand(r, key, g)
		}
	}
	return nil
}

// uniquelyIndexed reports whether a single-column UNIQUE index covers field.
func uniquelyIndexed(c *strata.Collection, field string) bool {
	for _, s := range c.Indexes {
		idx, err := strata.ParseIndex(s)
		if err == nil && idx.Unique && idx.Where == "" && len(idx.Columns) == 1 && idx.ColumnNames()[0] == field {
			return true
		}
	}
	return false
}

// Export turns records into the JSON objects req may see (API.md §1.6):
// password and tokenKey never, hidden fields for superusers only, email
// only when visible, allowed to the caller, or the caller manages it.
func (a *App) Export(ctx context.Context, req *strata.RequestInfo, recs []*strata.Record) ([]*Doc, error) {
	out := make([]*Doc, len(recs))
	if len(recs) == 0 {
		return out, nil
	}
	managed, err := a.managedIDs(ctx, req, recs)
	if err != nil {
		return nil, err
	}
	for i, r := range recs {
		m, err := a.export(ctx, req, r, managed)
		if err != nil {
			return nil, err
		}
		out[i] = m
	}
	return out, nil
}

// ExportOne is Export for a single record; showEmail forces the email in
// (auth responses always include it).
func (a *App) ExportOne(ctx context.Context, req *strata.RequestInfo, r *strata.Record, showEmail bool) (*Doc, error) {
	managed := map[string]bool{}
	if showEmail {
		managed[r.ID()] = true
	} else {
		var err error
		if managed, err = a.managedIDs(ctx, req, []*strata.Record{r}); err != nil {
			return nil, err
		}
	}
	return a.export(ctx, req, r, managed)
}

// managedIDs returns the ids of auth records whose email req may see
// through manageRule (one query for the whole list).
func (a *App) managedIDs(ctx context.Context, req *strata.RequestInfo, recs []*strata.Record) (map[string]bool, error) {
	c := recs[0].Collection
	out := map[string]bool{}
	if !c.IsAuth() || req == nil || req.Auth == nil || req.IsSuperuser() || c.Auth.ManageRule == nil {
		return out, nil
	}
	var ids []string
	for _, r := range recs {
		if !r.Bool("emailVisibility") && r.Collection == c {
			ids = append(ids, r.ID())
		}
	}
	if len(ids) == 0 {
		return out, nil
	}
	q := &strata.RecordQuery{Collection: c, Schema: a.Schema(), Request: req, IDs: ids,
		Filters: []strata.Filter{{Expr: *c.Auth.ManageRule}}}
	got, err := a.store.FindRecords(ctx, q)
	if err != nil {
		return nil, ruleError(err)
	}
	for _, r := range got {
		out[r.ID()] = true
	}
	return out, nil
}

func (a *App) export(ctx context.Context, req *strata.RequestInfo, r *strata.Record, managed map[string]bool) (*Doc, error) {
	c := r.Collection
	su := req.IsSuperuser()
	d := newDoc(len(c.Fields) + 3)
	hideEmail := c.IsAuth() && !su && !r.Bool("emailVisibility") && !managed[r.ID()] &&
		!(req != nil && req.Auth != nil && req.Auth.Collection.ID == c.ID && req.Auth.ID() == r.ID())
	for _, f := range c.Fields {
		if f.Type == strata.FieldPassword || f.Name == "tokenKey" || (f.Hidden && !su) || (hideEmail && f.Name == "email") {
			continue
		}
		d.keys = append(d.keys, f.Name)
		d.vals = append(d.vals, r.Data[f.Name])
	}
	d.keys = append(d.keys, "collectionId", "collectionName")
	d.vals = append(d.vals, c.ID, c.Name)
	if r.Expand != nil {
		exp := make(map[string]any, len(r.Expand))
		for k, v := range r.Expand {
			switch x := v.(type) {
			case *strata.Record:
				sub, err := a.ExportOne(ctx, req, x, false)
				if err != nil {
					return nil, err
				}
				exp[k] = sub
			case []*strata.Record:
				subs, err := a.Export(ctx, req, x)
				if err != nil {
					return nil, err
				}
				exp[k] = subs
			}
		}
		d.keys = append(d.keys, "expand")
		d.vals = append(d.vals, exp)
	}
	return d, nil
}
