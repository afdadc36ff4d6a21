package service

import (
	"context"
	"errors"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/filter"
)

func unixTime(sec float64) time.Time {
	s, frac := math.Modf(sec)
	return time.Unix(int64(s), int64(frac*1e9)).UTC()
}

var (
	errMissingCollection = strata.Errorf(strata.ENotFound, "Missing collection context.")
	errUnsupportedType   = strata.Errorf(strata.EInvalid, "Unsupported collection type.")
	errCreateFailed      = strata.Errorf(strata.EInvalid, "Failed to create record.")
)

// RecordCollection resolves the collection of a record route.
func (a *App) RecordCollection(idOrName string) (*strata.Collection, error) {
	c := a.Collection(idOrName)
	if c == nil {
		return nil, errMissingCollection
	}
	return c, nil
}

// RecordCache returns the cache reads by id go through (nil: none). The
// HTTP layer reaches the shared list cache through it (cache.Records.Lists),
// since the record cache is what every committed write invalidates.
func (a *App) RecordCache() strata.RecordCache { return a.cache }

// ListParams are the query parameters of a list request, already parsed.
type ListParams struct {
	Page, PerPage int
	Sort, Filter  string
	SkipTotal     bool
}

// ListResult is one page of records.
type ListResult struct {
	Page       int
	PerPage    int
	TotalItems int
	TotalPages int
	Items      []*strata.Record
}

const (
	maxFilterLen = 3500
	maxPerPage   = 1000
)

// ListRecords returns one page of the records the caller may list.
func (a *App) ListRecords(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, p ListParams) (*ListResult, error) {
	su := req.IsSuperuser()
	if !su && c.ListRule == nil {
		return nil, errSuperuserOnly
	}
	if len(p.Filter) > maxFilterLen {
		return nil, strata.Errorf(strata.EInvalid, "The filter expression is too long.")
	}
	if p.Page <= 0 {
		p.Page = 1
	}
	if p.PerPage <= 0 {
		p.PerPage = 30
	}
	p.PerPage = min(p.PerPage, maxPerPage)
	q := &strata.RecordQuery{Collection: c, Schema: a.Schema(), Request: req, Sort: p.Sort, SortRestricted: !su,
		Limit: p.PerPage, Offset: (p.Page - 1) * p.PerPage}
	if !su {
		q.Filters = append(q.Filters, strata.Filter{Expr: *c.ListRule})
		// The rule is a filter of the queries below: they are its check.
		var span trace.Span
		ctx, span = traceRule(ctx, req, c, "list")
		defer span.End()
	}
	if p.Filter != "" {
		q.Filters = append(q.Filters, strata.Filter{Expr: p.Filter, Restricted: !su})
	}
	items, err := a.store.FindRecords(ctx, q)
	if err != nil {
		return nil, listError(err)
	}
	res := &ListResult{Page: p.Page, PerPage: p.PerPage, Items: items, TotalItems: -1, TotalPages: -1}
	if !p.SkipTotal {
		n, err := a.store.CountRecords(ctx, q)
		if err != nil {
			return nil, listError(err)
		}
		res.TotalItems = n
		res.TotalPages = (n + p.PerPage - 1) / p.PerPage
	}
	return res, nil
}

// listError turns a filter or sort compile error into PocketBase's generic
// 400 (data:{}), keeping 403s for forbidden identifiers.
func listError(err error) error {
	var e *strata.Error
	if errors.As(err, &e) && e.Code == strata.EInvalid {
		return &strata.Error{Code: strata.EInvalid, Message: "Something went wrong while processing your request.", Err: err}
	}
	return err
}

// GetRecord returns a record the caller may view. The record comes from the
// cache when it can; the viewRule is checked on every call, in memory when
// it only needs the record and @request, else with one indexed query.
func (a *App) GetRecord(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, id string) (*strata.Record, error) {
	su := req.IsSuperuser()
	if !su && c.ViewRule == nil {
		return nil, errSuperuserOnly
	}
	r, err := a.findByID(ctx, c, id)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, notFound()
	}
	if !su && strings.TrimSpace(*c.ViewRule) != "" {
		rctx, span := traceRule(ctx, req, c, "view")
		ok, err := a.allows(rctx, req, r, *c.ViewRule)
		endRule(span, ok, err)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, notFound()
		}
	}
	return r, nil
}

// allows reports whether rule matches record r for req.
func (a *App) allows(ctx context.Context, req *strata.RequestInfo, r *strata.Record, rule string) (bool, error) {
	expr, err := filter.ParseCached(rule)
	if err != nil {
		return false, ruleError(err)
	}
	env := &filter.Env{Collection: r.Collection, Schema: a.Schema(), Request: req}
	if !filter.NeedsStore(expr, env) {
		ok, err := filter.Eval(expr, env, r)
		if err == nil {
			return ok, nil
		}
		if !errors.Is(err, filter.ErrNeedsStore) {
			return false, ruleError(err)
		}
	}
	got, err := a.findAllowed(ctx, a.store, req, r.Collection, r.ID(), &rule)
	if err != nil {
		return false, ruleError(err)
	}
	return got != nil, nil
}

// flightTimeout bounds a read shared by coalesced callers (findByID), which
// does not end with any one caller's deadline: as long as the default
// request deadline, so that a stuck query cannot hold a goroutine forever.
const flightTimeout = 30 * time.Second

// findByID loads a record without any rule, through the cache. The result
// is the caller's own shallow copy (callers attach expands to it); its Data
// is shared with the cache and must not be modified.
func (a *App) findByID(ctx context.Context, c *strata.Collection, id string) (*strata.Record, error) {
	if a.cache == nil {
		return a.findAllowed(ctx, a.store, nil, c, id, nil)
	}
	if r, ok := a.cache.Get(c.ID, id); ok && r.Collection == c {
		cp := *r
		return &cp, nil
	}
	flight := a.flights.DoChan(c.ID+"/"+id, func() (any, error) {
		gen := a.cache.Generation()
		// Shared by every caller waiting on this key: one caller going
		// away must not fail the others, so the read has a deadline of its
		// own. What is cached is served to every caller until the next
		// write, so it is read from the primary: a replica might still
		// hold an older version (or none).
		fctx, cancel := context.WithTimeout(strata.WithReadAfter(context.WithoutCancel(ctx), strata.ReadLatest), flightTimeout)
		defer cancel()
		r, err := a.findAllowed(fctx, a.store, nil, c, id, nil)
		if err == nil && r != nil {
			a.cache.Fill(c.ID, id, r, gen)
		}
		return r, err
	})
	var v any
	select {
	case res := <-flight:
		if res.Err != nil {
			return nil, res.Err
		}
		v = res.Val
	case <-ctx.Done():
		// Each caller still keeps its own deadline.
		return nil, &strata.Error{Code: strata.EUnavailable, Message: "The request took too long.", Err: ctx.Err()}
	}
	r, _ := v.(*strata.Record)
	if r == nil {
		return nil, nil
	}
	cp := *r
	return &cp, nil
}

// findAllowed loads record id of c if rule (unless the caller is a
// superuser, or rule is nil and req is nil: an internal lookup) lets req see
// it; nil without error when missing or hidden.
func (a *App) findAllowed(ctx context.Context, r strata.Reader, req *strata.RequestInfo, c *strata.Collection, id string, rule *string) (*strata.Record, error) {
	if id == "" || len(id) > 255 {
		return nil, nil
	}
	q := &strata.RecordQuery{Collection: c, Schema: a.Schema(), Request: req, IDs: []string{id}, Limit: 1}
	if req != nil && !req.IsSuperuser() && rule != nil && strings.TrimSpace(*rule) != "" {
		q.Filters = []strata.Filter{{Expr: *rule}}
	}
	recs, err := r.FindRecords(ctx, q)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return recs[0], nil
}

// Input is a record write: the decoded body (JSON, or multipart values
// already inferred) with modifier keys as sent.
type Input map[string]any

// CreateRecord validates and inserts a record, checking createRule against
// the record as it would be stored.
func (a *App) CreateRecord(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, in Input) (*strata.Record, []strata.Change, error) {
	var rec *strata.Record
	changes, err := a.write(ctx, func(tx strata.Tx) error {
		var err error
		rec, err = a.createInTx(ctx, tx, req, c, in)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return rec, changes, nil
}

// UpdateRecord applies a partial update the updateRule allows.
func (a *App) UpdateRecord(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, id string, in Input) (*strata.Record, []strata.Change, error) {
	var rec *strata.Record
	changes, err := a.write(ctx, func(tx strata.Tx) error {
		var err error
		rec, err = a.updateInTx(ctx, tx, req, c, id, in)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return rec, changes, nil
}

// DeleteRecord deletes a record the deleteRule allows, with cascades.
func (a *App) DeleteRecord(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, id string) ([]strata.Change, error) {
	return a.write(ctx, func(tx strata.Tx) error {
		return a.deleteCheckedInTx(ctx, tx, req, c, id)
	})
}

// systemKeys are body keys never written from input.
var systemKeys = map[string]bool{"collectionId": true, "collectionName": true, "expand": true}

// modifier is one parsed body key.
type modifier struct {
	key   string // as sent
	field *strata.Field
	op    string // "", "+", "prepend", "-", "autogenerate"
	value any
}

// parseInput splits the body into per-field operations, ordered so that
// shorter keys apply first (API.md §4.1). Unknown keys and, for
// non-superusers, hidden fields are dropped.
func parseInput(c *strata.Collection, in Input, su bool) []modifier {
	var mods []modifier
	for key, v := range in {
		name, op := key, ""
		switch {
		case strings.HasSuffix(key, ":autogenerate"):
			name, op = strings.TrimSuffix(key, ":autogenerate"), "autogenerate"
		case strings.HasSuffix(key, "+"):
			name, op = strings.TrimSuffix(key, "+"), "+"
		case strings.HasPrefix(key, "+"):
			name, op = strings.TrimPrefix(key, "+"), "prepend"
		case strings.HasSuffix(key, "-"):
			name, op = strings.TrimSuffix(key, "-"), "-"
		}
		f := c.Field(name)
		if f == nil || systemKeys[name] || f.Type == strata.FieldAutodate {
			continue
		}
		if f.Hidden && !su && f.Type != strata.FieldPassword {
			continue
		}
		if f.Name == "tokenKey" {
			continue
		}
		mods = append(mods, modifier{key: key, field: f, op: op, value: v})
	}
	sort.SliceStable(mods, func(i, j int) bool {
		if len(mods[i].key) != len(mods[j].key) {
			return len(mods[i].key) < len(mods[j].key)
		}
		return mods[i].key < mods[j].key
	})
	return mods
}

// applyModifier applies one operation to the record's current value.
func applyModifier(r *strata.Record, m modifier) {
	f := m.field
	cur := r.Data[f.Name]
	switch m.op {
	case "":
		r.Data[f.Name] = coerce(f, m.value)
	case "+", "prepend", "-":
		switch f.Type {
		case strata.FieldNumber:
			n, _ := cur.(float64)
			if m.op == "-" {
				r.Data[f.Name] = n - toNumber(m.value)
			} else {
				r.Data[f.Name] = n + toNumber(m.value)
			}
		case strata.FieldSelect, strata.FieldRelation, strata.FieldFile:
			list := append([]string(nil), listOf(cur)...)
			items := toList(m.value)
			switch m.op {
			case "+":
				list = append(list, items...)
			case "prepend":
				list = append(items, list...)
			case "-":
				kept := list[:0]
				for _, v := range list {
					if !contains(items, v) {
						kept = append(kept, v)
					}
				}
				list = kept
			}
			r.Data[f.Name] = coerce(f, list)
		case strata.FieldText, strata.FieldEditor:
			if m.op == "+" {
				r.Data[f.Name] = toText(cur) + toText(m.value)
			} else if m.op == "prepend" {
				r.Data[f.Name] = toText(m.value) + toText(cur)
			}
		}
	case "autogenerate":
		if f.Type == strata.FieldText {
			suffix := ""
			if g, err := compileGenerator(f.AutogeneratePattern); err == nil && f.AutogeneratePattern != "" {
				suffix = g.generate()
			}
			r.Data[f.Name] = toText(m.value) + suffix
		}
	}
}

// authForm holds the auth-only keys of a write.
type authForm struct {
	password, passwordConfirm, oldPassword string
	hasPassword                            bool
}

func authFormOf(in Input) authForm {
	var f authForm
	if v, ok := in["password"]; ok {
		f.password, f.hasPassword = toText(v), true
	}
	f.passwordConfirm = toText(in["passwordConfirm"])
	f.oldPassword = toText(in["oldPassword"])
	return f
}

// bodyForRules is @request.body: submitted fields after modifiers, hidden
// fields removed for non-superusers; keys are the plain field names.
func bodyForRules(r *strata.Record, mods []modifier, su bool) map[string]any {
	body := map[string]any{}
	for _, m := range mods {
		if m.field.Hidden && !su {
			continue
		}
		body[m.field.Name] = r.Data[m.field.Name]
	}
	return body
}

func withBody(req *strata.RequestInfo, body map[string]any) *strata.RequestInfo {
	out := &strata.RequestInfo{Context: strata.ContextDefault}
	if req != nil {
		cp := *req
		out = &cp
	}
	out.Body = body
	return out
}

// canManage reports whether req may manage auth record r (email, verified,
// password without oldPassword): superusers, or manageRule matches.
func (a *App) canManage(ctx context.Context, rd strata.Reader, req *strata.RequestInfo, r *strata.Record) (bool, error) {
	if req.IsSuperuser() {
		return true, nil
	}
	c := r.Collection
	if c.Auth == nil || c.Auth.ManageRule == nil || req == nil || req.Auth == nil {
		return false, nil
	}
	got, err := a.findAllowed(ctx, rd, req, c, r.ID(), c.Auth.ManageRule)
	return got != nil, err
}

func (a *App) createInTx(ctx context.Context, tx strata.Tx, req *strata.RequestInfo, c *strata.Collection, in Input) (*strata.Record, error) {
	su := req.IsSuperuser()
	if c.Type == strata.CollectionView {
		return nil, errUnsupportedType
	}
	if !su && c.CreateRule == nil {
		return nil, errSuperuserOnly
	}
	r := strata.NewRecord(c)
	mods := parseInput(c, in, su)
	for _, m := range mods {
		if m.field.Type == strata.FieldPassword {
			continue
		}
		applyModifier(r, m)
	}
	errs := map[string]any{}
	now := strata.NowDate()
	for _, f := range c.Fields {
		switch {
		case f.Type == strata.FieldAutodate && f.OnCreate:
			r.Data[f.Name] = now
		case f.Type == strata.FieldText && r.String(f.Name) == "" && f.AutogeneratePattern != "":
			if g, err := compileGenerator(f.AutogeneratePattern); err == nil {
				r.Data[f.Name] = g.generate()
			}
		}
	}
	if c.IsAuth() {
		form := authFormOf(in)
		formErrs := map[string]any{}
		if !form.hasPassword || form.password == "" {
			formErrs["password"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
		} else if form.password != form.passwordConfirm {
			formErrs["passwordConfirm"] = strata.NewFieldError("validation_values_mismatch", "Values don't match.", nil)
		}
		if c.IsSuperusers() {
			r.Data["verified"] = true
		} else if r.Bool("verified") && !su {
			// Only managers may mark a new account verified; manageRule is
			// checked against the stored record below.
			if c.Auth.ManageRule == nil {
				r.Data["verified"] = false
			}
		}
		if len(formErrs) > 0 {
			return nil, strata.ValidationError("Failed to create record.", formErrs)
		}
		if pf := authPasswordField(c); pf != nil {
			if fe := validatePassword(pf, form.password); fe != nil {
				errs["password"] = fe
			}
		}
	}
	a.validateRecord(ctx, tx, r, errs)
	if len(errs) > 0 {
		return nil, strata.ValidationError("Failed to create record.", errs)
	}
	if c.IsAuth() {
		hash, err := a.hasher.Hash(ctx, authFormOf(in).password)
		if err != nil {
			return nil, err
		}
		r.Data["password"] = hash
	}
	if err := tx.InsertRecord(ctx, r); err != nil {
		return nil, writeError("Failed to create record.", err)
	}
	if !su {
		body := bodyForRules(r, mods, su)
		rreq := withBody(req, body)
		if rule := strings.TrimSpace(*c.CreateRule); rule != "" {
			rctx, span := traceRule(ctx, req, c, "create")
			got, err := a.findAllowed(rctx, tx, rreq, c, r.ID(), c.CreateRule)
			endRule(span, got != nil, err)
			if err != nil {
				return nil, ruleError(err)
			}
			if got == nil {
				return nil, errCreateFailed
			}
		}
		if c.IsAuth() && r.Bool("verified") {
			ok, err := a.canManage(ctx, tx, rreq, r)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, strata.ValidationError("Failed to create record.", map[string]any{
					"verified": strata.NewFieldError("validation_values_mismatch", "Values don't match.", nil)})
			}
		}
	}
	return r, nil
}

func authPasswordField(c *strata.Collection) *strata.Field {
	for _, f := range c.Fields {
		if f.Type == strata.FieldPassword {
			return f
		}
	}
	return nil
}

// ruleError hides a broken rule's compile error behind a generic 400.
func ruleError(err error) error {
	var e *strata.Error
	if errors.As(err, &e) && (e.Code == strata.EInvalid || e.Code == strata.EForbidden) {
		return &strata.Error{Code: strata.EInvalid, Message: "Something went wrong while processing your request.", Err: err}
	}
	return err
}

// writeError gives a store validation error (unique violation) the
// operation's message.
func writeError(msg string, err error) error {
	var e *strata.Error
	if errors.As(err, &e) && e.Code == strata.EInvalid && len(e.Data) > 0 {
		return &strata.Error{Code: strata.EInvalid, Message: msg, Data: e.Data, Err: err}
	}
	return err
}

var customIDForbidden = regexp.MustCompile(`[./\\|"'` + "`" + `<>:?*%$\s\x00]`)
var reservedIDs = regexp.MustCompile(`(?i)^(con|prn|aux|nul|com[1-9]|lpt[1-9])$`)

// validateRecord runs every field's checks, relation existence included.
func (a *App) validateRecord(ctx context.Context, rd strata.Reader, r *strata.Record, errs map[string]any) {
	c := r.Collection
	for _, f := range c.Fields {
		if _, done := errs[f.Name]; done || f.Type == strata.FieldPassword || f.Type == strata.FieldAutodate {
			continue
		}
		v := r.Data[f.Name]
		if f.Name == "tokenKey" {
			continue
		}
		if fe := validateValue(f, v); fe != nil {
			errs[f.Name] = fe
			continue
		}
		if f.Name == "id" && f.Pattern != "^[a-z0-9]+$" {
			id := r.ID()
			if customIDForbidden.MatchString(id) || reservedIDs.MatchString(id) {
				errs["id"] = strata.NewFieldError("validation_invalid_format", "Invalid value format.", nil)
				continue
			}
		}
		if f.Type == strata.FieldRelation {
			ids := listOf(v)
			if len(ids) == 0 {
				continue
			}
			target := a.Collection(f.CollectionID)
			if target == nil {
				errs[f.Name] = strata.NewFieldError("validation_missing_rel_records", "Failed to find all relation records with the provided ids.", nil)
				continue
			}
			n, err := rd.CountRecords(ctx, &strata.RecordQuery{Collection: target, Schema: a.Schema(), IDs: ids})
			if err != nil || n != len(ids) {
				errs[f.Name] = strata.NewFieldError("validation_missing_rel_records", "Failed to find all relation records with the provided ids.", nil)
			}
		}
		if f.Type == strata.FieldFile {
			// Uploads arrive with the files issue; until then only existing
			// filenames may be kept.
			errs[f.Name] = strata.NewFieldError("validation_invalid_file", "Invalid file value.", nil)
			if len(listOf(v)) == 0 {
				delete(errs, f.Name)
			}
		}
	}
}

func (a *App) updateInTx(ctx context.Context, tx strata.Tx, req *strata.RequestInfo, c *strata.Collection, id string, in Input) (*strata.Record, error) {
	su := req.IsSuperuser()
	if c.Type == strata.CollectionView {
		return nil, errUnsupportedType
	}
	if !su && c.UpdateRule == nil {
		return nil, errSuperuserOnly
	}
	stored, err := a.findAllowed(ctx, tx, nil, c, id, nil)
	if err != nil {
		return nil, err
	}
	if stored == nil {
		return nil, notFound()
	}
	r := stored.Clone()
	mods := parseInput(c, in, su)
	for _, m := range mods {
		if m.field.Type == strata.FieldPassword {
			continue
		}
		applyModifier(r, m)
	}
	body := bodyForRules(r, mods, su)
	rreq := withBody(req, body)
	if !su && strings.TrimSpace(*c.UpdateRule) != "" {
		rctx, span := traceRule(ctx, req, c, "update")
		got, err := a.findAllowed(rctx, tx, rreq, c, id, c.UpdateRule)
		endRule(span, got != nil, err)
		if err != nil {
			return nil, ruleError(err)
		}
		if got == nil {
			return nil, notFound()
		}
	}
	errs := map[string]any{}
	if r.ID() != stored.ID() {
		errs["id"] = strata.NewFieldError("validation_pk_change", "The record primary key cannot be changed.", nil)
		r.Data["id"] = stored.ID()
	}
	for _, f := range c.Fields {
		if f.Type == strata.FieldAutodate {
			r.Data[f.Name] = stored.Data[f.Name]
			if f.OnUpdate {
				r.Data[f.Name] = strata.NowDate()
			}
		}
	}
	var newHash string
	if c.IsAuth() {
		form := authFormOf(in)
		manage := false
		emailChanged := r.String("email") != stored.String("email")
		verifiedChanged := r.Bool("verified") != stored.Bool("verified")
		if (form.hasPassword && form.password != "") || emailChanged || verifiedChanged {
			manage, err = a.canManage(ctx, tx, rreq, stored)
			if err != nil {
				return nil, err
			}
		}
		formErrs := map[string]any{}
		if emailChanged && !manage {
			formErrs["email"] = strata.NewFieldError("validation_values_mismatch", "Values don't match.", nil)
		}
		if verifiedChanged && !manage {
			formErrs["verified"] = strata.NewFieldError("validation_values_mismatch", "Values don't match.", nil)
		}
		if c.IsSuperusers() {
			r.Data["verified"] = true
		}
		if form.hasPassword && form.password != "" {
			if form.password != form.passwordConfirm {
				formErrs["passwordConfirm"] = strata.NewFieldError("validation_values_mismatch", "Values don't match.", nil)
			}
			if !manage {
				if form.oldPassword == "" {
					formErrs["oldPassword"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
				} else {
					ok, _, err := a.hasher.Verify(ctx, stored.String("password"), form.oldPassword)
					if err != nil {
						return nil, err
					}
					if !ok {
						formErrs["oldPassword"] = strata.NewFieldError("validation_invalid_old_password", "Missing or invalid old password.", nil)
					}
				}
			}
		}
		if len(formErrs) > 0 {
			return nil, strata.ValidationError("Failed to update record.", formErrs)
		}
		if form.hasPassword && form.password != "" {
			if fe := validatePassword(authPasswordField(c), form.password); fe != nil {
				errs["password"] = fe
			} else if newHash, err = a.hasher.Hash(ctx, form.password); err != nil {
				return nil, err
			}
		}
		if newHash != "" || emailChanged {
			// Every earlier token of this record stops verifying.
			r.Data["tokenKey"] = randomSecret(50)
		}
	}
	a.validateRecord(ctx, tx, r, errs)
	if len(errs) > 0 {
		return nil, strata.ValidationError("Failed to update record.", errs)
	}
	if newHash != "" {
		r.Data["password"] = newHash
	}
	if c.IsAuth() && r.Bool("verified") && !stored.Bool("verified") {
		if err := a.dropExternalAuths(ctx, tx, r); err != nil {
			return nil, err
		}
	}
	if err := tx.UpdateRecord(ctx, r); err != nil {
		return nil, writeError("Failed to update record.", err)
	}
	return r, nil
}

func (a *App) deleteCheckedInTx(ctx context.Context, tx strata.Tx, req *strata.RequestInfo, c *strata.Collection, id string) error {
	su := req.IsSuperuser()
	if c.Type == strata.CollectionView {
		return errUnsupportedType
	}
	if !su && c.DeleteRule == nil {
		return errSuperuserOnly
	}
	rule := c.DeleteRule
	if su {
		rule = nil
	}
	rctx, span := traceRule(ctx, req, c, "delete")
	stored, err := a.findAllowed(rctx, tx, withBody(req, map[string]any{}), c, id, rule)
	endRule(span, stored != nil, err)
	if err != nil {
		return ruleError(err)
	}
	if stored == nil {
		return notFound()
	}
	return a.deleteInTx(ctx, tx, stored, 0)
}

const maxCascadeDepth = 32

// deleteInTx deletes r and applies PocketBase's cascade: records whose
// cascadeDelete relation points at r are deleted too; other references
// have r's id removed (a required single relation blocks the delete).
func (a *App) deleteInTx(ctx context.Context, tx strata.Tx, r *strata.Record, depth int) error {
	if depth > maxCascadeDepth {
		return strata.Errorf(strata.EInvalid, "The delete cascade is too deep.")
	}
	if err := tx.DeleteRecord(ctx, r); err != nil {
		return err
	}
	for _, ref := range a.references(r.Collection) {
		for {
			refs, err := tx.FindRecords(ctx, &strata.RecordQuery{Collection: ref.collection, Schema: a.Schema(),
				RelationField: ref.field.Name, RelationIDs: []string{r.ID()}, Limit: 200})
			if err != nil {
				return err
			}
			if len(refs) == 0 {
				break
			}
			for _, other := range refs {
				if ref.field.CascadeDelete {
					if err := a.deleteInTx(ctx, tx, other, depth+1); err != nil {
						return err
					}
					continue
				}
				left := []string{}
				for _, v := range other.Strings(ref.field.Name) {
					if v != r.ID() {
						left = append(left, v)
					}
				}
				if ref.field.Required && len(left) == 0 {
					return strata.Errorf(strata.EInvalid, "The record is required by %s.%s and cannot be deleted.", ref.collection.Name, ref.field.Name)
				}
				other.Data[ref.field.Name] = coerce(ref.field, left)
				if err := tx.UpdateRecord(ctx, other); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// BatchTx runs record writes inside one transaction (POST /api/batch).
type BatchTx struct {
	a  *App
	tx strata.Tx
}

// Batch runs fn in one transaction; any error rolls back every write.
func (a *App) Batch(ctx context.Context, fn func(b *BatchTx) error) ([]strata.Change, error) {
	return a.write(ctx, func(tx strata.Tx) error { return fn(&BatchTx{a: a, tx: tx}) })
}

// Create is CreateRecord inside the batch.
func (b *BatchTx) Create(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, in Input) (*strata.Record, error) {
	return b.a.createInTx(ctx, b.tx, req, c, in)
}

// Update is UpdateRecord inside the batch.
func (b *BatchTx) Update(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, id string, in Input) (*strata.Record, error) {
	return b.a.updateInTx(ctx, b.tx, req, c, id, in)
}

// Upsert updates the record named by body.id if it exists, else creates it.
func (b *BatchTx) Upsert(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, in Input) (*strata.Record, error) {
	id := toText(in["id"])
	if id != "" {
		existing, err := b.a.findAllowed(ctx, b.tx, nil, c, id, nil)
		if err != nil {
			return nil, err
		}
		if existing != nil {
			return b.a.updateInTx(ctx, b.tx, req, c, id, in)
		}
	}
	return b.a.createInTx(ctx, b.tx, req, c, in)
}

// Delete is DeleteRecord inside the batch.
func (b *BatchTx) Delete(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, id string) error {
	return b.a.deleteCheckedInTx(ctx, b.tx, req, c, id)
}

// Get reads a record inside the batch (sees the batch's own writes).
func (b *BatchTx) Get(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, id string) (*strata.Record, error) {
	return b.a.findAllowed(ctx, b.tx, req, c, id, c.ViewRule)
}
