package telemetry

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-run/strata"
)

// Database systems for TraceStore, as OpenTelemetry names them in db.system.
const (
	DBSQLite     = "sqlite"
	DBPostgreSQL = "postgresql"
)

// TraceStore wraps st so that each store call made inside a recorded span
// (a sampled request) gets a child span: one per read, per Write, and per
// operation of the write transaction, under the Write's span. Calls outside
// a trace (the change-log follower, log pruning) pass straight through, so
// background polling does not flood the tracing backend with one-span
// traces. system is DBSQLite or DBPostgreSQL.
//
// The optional interfaces the service layer looks for on a store (Ping,
// and the SQLite snapshot methods behind backups) stay visible through the
// wrapper when st has them; Unwrap returns st.
func TraceStore(st strata.Store, system string) strata.Store {
	return wrapStore(&tracedStore{next: st, system: system})
}

// wrapStore gives t the optional methods its store has.
func wrapStore(t *tracedStore) strata.Store {
	p, canPing := t.next.(pinger)
	sn, canSnap := t.next.(snapshotter)
	switch {
	case canPing && canSnap:
		return &struct {
			*tracedStore
			pinger
			snapshotter
		}{t, p, sn}
	case canPing:
		return &struct {
			*tracedStore
			pinger
		}{t, p}
	case canSnap:
		return &struct {
			*tracedStore
			snapshotter
		}{t, sn}
	}
	return t
}

type pinger interface {
	Ping(ctx context.Context) error
}

// snapshotter is service.SnapshotStore, repeated here because telemetry
// sits below the service layer.
type snapshotter interface {
	Snapshot(ctx context.Context, w io.Writer) error
	StageRestore(ctx context.Context, r io.Reader) error
	Path() string
}

type tracedStore struct {
	next   strata.Store
	system string
	// roots, when set, starts a root span for calls outside any trace; the
	// conformance test uses it to run every call through the span path.
	roots trace.TracerProvider
}

// Unwrap returns the store TraceStore wrapped.
func (s *tracedStore) Unwrap() strata.Store { return s.next }

// start begins the span of one store operation on collection c (nil for
// operations not about one collection).
func (s *tracedStore) start(ctx context.Context, op string, c *strata.Collection) (context.Context, trace.Span) {
	ctx, span := StartChild(ctx, op, trace.SpanKindClient)
	if !span.IsRecording() {
		if s.roots == nil {
			return ctx, span
		}
		ctx, span = s.roots.Tracer(Instrumentation).Start(ctx, op, trace.WithSpanKind(trace.SpanKindClient))
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.String("db.system", s.system), attribute.String("db.operation.name", op))
		if c != nil {
			span.SetAttributes(attribute.String("db.collection.name", c.Name))
		}
	}
	return ctx, span
}

func queryCollection(q *strata.RecordQuery) *strata.Collection {
	if q == nil {
		return nil
	}
	return q.Collection
}

// FindRecords implements strata.Reader.
func (s *tracedStore) FindRecords(ctx context.Context, q *strata.RecordQuery) ([]*strata.Record, error) {
	return findRecords(ctx, s, s.next, q)
}

// CountRecords implements strata.Reader.
func (s *tracedStore) CountRecords(ctx context.Context, q *strata.RecordQuery) (int, error) {
	return countRecords(ctx, s, s.next, q)
}

// Setting implements strata.Reader.
func (s *tracedStore) Setting(ctx context.Context, key string) (json.RawMessage, bool, error) {
	return setting(ctx, s, s.next, key)
}

// Changes implements strata.Reader.
func (s *tracedStore) Changes(ctx context.Context, after int64, limit int) ([]strata.Change, error) {
	return changes(ctx, s, s.next, after, limit)
}

// Collections implements strata.Store.
func (s *tracedStore) Collections(ctx context.Context) ([]*strata.Collection, error) {
	ctx, span := s.start(ctx, "Collections", nil)
	list, err := s.next.Collections(ctx)
	EndSpan(span, err)
	return list, err
}

// LastChangeSeq implements strata.Store.
func (s *tracedStore) LastChangeSeq(ctx context.Context) (int64, error) {
	ctx, span := s.start(ctx, "LastChangeSeq", nil)
	seq, err := s.next.LastChangeSeq(ctx)
	EndSpan(span, err)
	return seq, err
}

// PruneChanges implements strata.Store.
func (s *tracedStore) PruneChanges(ctx context.Context, before time.Time, max int) (int, error) {
	ctx, span := s.start(ctx, "PruneChanges", nil)
	n, err := s.next.PruneChanges(ctx, before, max)
	EndSpan(span, err)
	return n, err
}

// Write implements strata.Store. The transaction's operations are traced
// under the Write's span, even though fn passes them the caller's context.
func (s *tracedStore) Write(ctx context.Context, fn func(strata.Tx) error) ([]strata.Change, error) {
	wctx, span := s.start(ctx, "Write", nil)
	if !span.IsRecording() {
		return s.next.Write(ctx, fn)
	}
	outer := trace.SpanContextFromContext(ctx).SpanID()
	chs, err := s.next.Write(wctx, func(tx strata.Tx) error {
		return fn(&tracedTx{next: tx, s: s, outer: outer, write: span})
	})
	span.SetAttributes(attribute.Int("strata.changes", len(chs)))
	EndSpan(span, err)
	return chs, err
}

// Close implements strata.Store.
func (s *tracedStore) Close() error { return s.next.Close() }

// starter starts the span of one operation; the store and a transaction
// start theirs differently.
type starter interface {
	start(ctx context.Context, op string, c *strata.Collection) (context.Context, trace.Span)
}

func findRecords(ctx context.Context, s starter, r strata.Reader, q *strata.RecordQuery) ([]*strata.Record, error) {
	ctx, span := s.start(ctx, "FindRecords", queryCollection(q))
	recs, err := r.FindRecords(ctx, q)
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("strata.records", len(recs)))
	}
	EndSpan(span, err)
	return recs, err
}

func countRecords(ctx context.Context, s starter, r strata.Reader, q *strata.RecordQuery) (int, error) {
	ctx, span := s.start(ctx, "CountRecords", queryCollection(q))
	n, err := r.CountRecords(ctx, q)
	EndSpan(span, err)
	return n, err
}

func setting(ctx context.Context, s starter, r strata.Reader, key string) (json.RawMessage, bool, error) {
	ctx, span := s.start(ctx, "Setting", nil)
	v, ok, err := r.Setting(ctx, key)
	EndSpan(span, err)
	return v, ok, err
}

func changes(ctx context.Context, s starter, r strata.Reader, after int64, limit int) ([]strata.Change, error) {
	ctx, span := s.start(ctx, "Changes", nil)
	chs, err := r.Changes(ctx, after, limit)
	EndSpan(span, err)
	return chs, err
}

// tracedTx traces the operations of one write transaction.
type tracedTx struct {
	next strata.Tx
	s    *tracedStore
	// outer is the span that was current where Write was called, write the
	// Write's own span: an operation called with the outer span's context
	// is re-parented under write, while one called inside a span of its
	// own (a rule check in the transaction) keeps that parent.
	outer trace.SpanID
	write trace.Span
}

func (t *tracedTx) start(ctx context.Context, op string, c *strata.Collection) (context.Context, trace.Span) {
	if trace.SpanContextFromContext(ctx).SpanID() == t.outer {
		ctx = trace.ContextWithSpan(ctx, t.write)
	}
	return t.s.start(ctx, op, c)
}

func (t *tracedTx) FindRecords(ctx context.Context, q *strata.RecordQuery) ([]*strata.Record, error) {
	return findRecords(ctx, t, t.next, q)
}

func (t *tracedTx) CountRecords(ctx context.Context, q *strata.RecordQuery) (int, error) {
	return countRecords(ctx, t, t.next, q)
}

func (t *tracedTx) Setting(ctx context.Context, key string) (json.RawMessage, bool, error) {
	return setting(ctx, t, t.next, key)
}

func (t *tracedTx) Changes(ctx context.Context, after int64, limit int) ([]strata.Change, error) {
	return changes(ctx, t, t.next, after, limit)
}

func (t *tracedTx) CreateCollection(ctx context.Context, c *strata.Collection) error {
	ctx, span := t.start(ctx, "CreateCollection", c)
	err := t.next.CreateCollection(ctx, c)
	EndSpan(span, err)
	return err
}

func (t *tracedTx) UpdateCollection(ctx context.Context, old, c *strata.Collection) error {
	ctx, span := t.start(ctx, "UpdateCollection", c)
	err := t.next.UpdateCollection(ctx, old, c)
	EndSpan(span, err)
	return err
}

func (t *tracedTx) DeleteCollection(ctx context.Context, c *strata.Collection) error {
	ctx, span := t.start(ctx, "DeleteCollection", c)
	err := t.next.DeleteCollection(ctx, c)
	EndSpan(span, err)
	return err
}

func (t *tracedTx) TruncateCollection(ctx context.Context, c *strata.Collection) error {
	ctx, span := t.start(ctx, "TruncateCollection", c)
	err := t.next.TruncateCollection(ctx, c)
	EndSpan(span, err)
	return err
}

func (t *tracedTx) InsertRecord(ctx context.Context, r *strata.Record) error {
	ctx, span := t.start(ctx, "InsertRecord", r.Collection)
	err := t.next.InsertRecord(ctx, r)
	EndSpan(span, err)
	return err
}

func (t *tracedTx) UpdateRecord(ctx context.Context, r *strata.Record) error {
	ctx, span := t.start(ctx, "UpdateRecord", r.Collection)
	err := t.next.UpdateRecord(ctx, r)
	EndSpan(span, err)
	return err
}

func (t *tracedTx) DeleteRecord(ctx context.Context, r *strata.Record) error {
	ctx, span := t.start(ctx, "DeleteRecord", r.Collection)
	err := t.next.DeleteRecord(ctx, r)
	EndSpan(span, err)
	return err
}

func (t *tracedTx) PutSetting(ctx context.Context, key string, value json.RawMessage) error {
	ctx, span := t.start(ctx, "PutSetting", nil)
	err := t.next.PutSetting(ctx, key, value)
	EndSpan(span, err)
	return err
}
