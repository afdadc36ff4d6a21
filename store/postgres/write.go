package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/strata-run/strata"
)

// Writes are group-committed, as on SQLite.
//
// The change log must be gap-free in commit order, so the transaction that
// appends to it holds an advisory lock through its COMMIT: commits, and
// their WAL flushes, are one at a time across all nodes. Giving each write
// its own transaction would cap writes at one WAL flush each, and cost
// every write eight round trips (BEGIN, savepoint, statement, release,
// lock, MAX, append, COMMIT), which on two cores cost more CPU than the
// work itself.
//
// So callers queue their functions, and a caller that gets one of the
// node's write lanes runs everything queued in one transaction on one
// connection, each function inside its own savepoint: a failing function
// rolls back only its own work. Nothing is acknowledged before the shared
// COMMIT succeeds. Control statements (BEGIN, SAVEPOINT, RELEASE) are not
// sent on their own: they wait and go out in the same round trip as the
// next statement, so a simple create costs one round trip plus its share
// of the commit, which sends the lock, the change-log append and COMMIT
// together: the lock is held only while the server runs them, never
// across a round trip to Strata.
//
// Lanes let one group run its functions while another commits. Statements
// of a group run on a context without the caller's cancellation: pgx
// answers a cancelled context by closing the connection, which would fail
// everyone else's writes; statement_timeout bounds them instead, and a
// caller that is gone before its function starts is skipped.

// maxGroup bounds how many queued transactions share one commit.
const maxGroup = 128

// writeReq is one caller's transaction waiting for a lane.
type writeReq struct {
	ctx     context.Context
	fn      func(strata.Tx) error
	changes []strata.Change
	err     error
	done    chan struct{}
}

// writeQueue holds the transactions waiting for a lane.
type writeQueue struct {
	mu    sync.Mutex
	queue []*writeReq
	lanes chan struct{} // one token per lane
}

// Write implements strata.Store (see the top of this file).
func (s *Store) Write(ctx context.Context, fn func(strata.Tx) error) ([]strata.Change, error) {
	defer s.m.observe(opWrite, onPrimary, time.Now())
	q := &s.writes
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan struct{})}
	q.mu.Lock()
	q.queue = append(q.queue, req)
	q.mu.Unlock()
	for {
		select {
		case <-req.done:
			return req.changes, req.err
		case q.lanes <- struct{}{}:
		}
		q.mu.Lock()
		n := min(len(q.queue), maxGroup)
		batch := q.queue[:n:n]
		q.queue = q.queue[n:]
		q.mu.Unlock()
		if n > 0 {
			s.commitGroup(batch)
		}
		<-q.lanes
		if n == 0 {
			// Another lane took this request and is running it.
			<-req.done
			return req.changes, req.err
		}
	}
}

// commitGroup runs batch in one transaction and answers every request.
func (s *Store) commitGroup(batch []*writeReq) {
	defer s.m.observe(opCommit, onPrimary, time.Now())
	s.m.groupSize.Observe(float64(len(batch)))
	finish := func(err error) {
		for _, r := range batch {
			if err != nil && r.err == nil {
				r.err, r.changes = err, nil
			}
			close(r.done)
		}
	}
	bg := context.Background()
	conn, err := s.pool.Acquire(bg)
	if err != nil {
		finish(translate(fmt.Errorf("begin: %w", err), nil))
		return
	}
	defer conn.Release()
	grouped := len(batch) > 1
	t := &tx{conn: conn.Conn(), pending: []string{"BEGIN"}, detach: grouped}
	var ok []*writeReq // requests whose function succeeded
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = translate(err, nil)
			continue
		}
		if grouped {
			t.pending = append(t.pending, "SAVEPOINT w")
		}
		t.changes = nil
		err := runFn(r.fn, t)
		if err == nil && grouped && t.conn.PgConn().TxStatus() == 'E' {
			// The function swallowed a failed statement: PostgreSQL has
			// aborted the transaction, so its work cannot commit. Undo
			// it alone rather than fail the group at the next statement.
			err = &strata.Error{Code: strata.EUnavailable, Message: "The database rejected the transaction, try again.",
				Err: errors.New("a statement failed and the transaction was aborted")}
		}
		if t.broken != nil {
			t.rollback()
			finish(translate(t.broken, nil))
			return
		}
		switch {
		case err != nil && !grouped:
			t.rollback()
			r.err = err
			finish(nil)
			return
		case err != nil:
			r.err = err
			t.rollbackSavepoint()
			if t.broken != nil {
				t.rollback()
				finish(translate(t.broken, nil))
				return
			}
		default:
			if grouped {
				t.releaseSavepoint()
			}
			r.changes = t.changes
			ok = append(ok, r)
		}
	}
	var all []strata.Change
	for _, r := range ok {
		all = append(all, r.changes...)
	}
	if slices.Equal(t.pending, []string{"BEGIN"}) {
		// Nothing reached the server and nothing changed.
		finish(nil)
		return
	}
	lsn, err := t.commit(all, s.replicas != nil)
	if err != nil {
		t.rollback()
		finish(translate(err, nil))
		return
	}
	// all shares its backing entries with each request's changes.
	for i, n := 0, 0; i < len(ok); i++ {
		ok[i].changes = all[n : n+len(ok[i].changes)]
		n += len(ok[i].changes)
	}
	if s.replicas != nil && len(ok) > 0 {
		s.noteWrites(ok, lsn)
	}
	finish(nil)
}

// runFn runs a caller's transaction body, turning a panic into an error so
// that one bad request cannot fail everyone in its group.
func runFn(fn func(strata.Tx) error, t *tx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic in write transaction: %v", v)
		}
	}()
	return fn(t)
}

// tx implements strata.Tx on a lane's connection. It is also the db that
// the shared read helpers take.
type tx struct {
	conn *pgx.Conn
	// pending are control statements not sent yet; they go out ahead of
	// the next statement, in the same round trip.
	pending []string
	// detach drops callers' cancellation (grouped transactions).
	detach bool
	// broken is set when a control statement failed: the transaction, and
	// with it the whole group, is lost.
	broken  error
	changes []strata.Change // this function's entries, appended at commit
}

func (t *tx) ctx(ctx context.Context) context.Context {
	if t.detach {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// releaseSavepoint ends a successful function's savepoint: the release
// goes out with the next statement, or the savepoint is dropped if it
// never reached the server.
func (t *tx) releaseSavepoint() {
	if n := len(t.pending); n > 0 && t.pending[n-1] == "SAVEPOINT w" {
		t.pending = t.pending[:n-1]
		return
	}
	t.pending = append(t.pending, "RELEASE SAVEPOINT w")
}

// rollbackSavepoint undoes a failed function's work. It runs at once, in
// the simple protocol: the transaction may be in the failed state, where
// the server refuses to prepare anything but ROLLBACK.
func (t *tx) rollbackSavepoint() {
	if n := len(t.pending); n > 0 && t.pending[n-1] == "SAVEPOINT w" {
		t.pending = t.pending[:n-1]
		return
	}
	t.undo("w")
}

// undo rolls back to the savepoint name and releases it (simple protocol,
// so it works in the failed state); if it fails, t is broken.
func (t *tx) undo(name string) {
	if t.broken != nil {
		return
	}
	if len(t.pending) > 0 {
		// Statements queued after the savepoint never ran: drop them
		// (the savepoint itself reached the server before them).
		t.pending = t.pending[:0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := t.conn.Exec(ctx, "ROLLBACK TO SAVEPOINT "+name+"; RELEASE SAVEPOINT "+name); err != nil {
		t.broken = fmt.Errorf("rollback to savepoint: %w", err)
	}
}

// send runs the pending control statements followed by stmts (if any) in
// one batch. The caller reads stmts' results from br and closes it; a
// failing control statement is reported as err (and marks t broken).
func (t *tx) send(ctx context.Context, stmts func(b *pgx.Batch)) (br pgx.BatchResults, err error) {
	b := &pgx.Batch{}
	for _, p := range t.pending {
		b.Queue(p)
	}
	n := len(t.pending)
	t.pending = t.pending[:0]
	if stmts != nil {
		stmts(b)
	}
	br = t.conn.SendBatch(t.ctx(ctx), b)
	for range n {
		if _, err := br.Exec(); err != nil {
			br.Close()
			t.broken = fmt.Errorf("transaction control: %w", err)
			return nil, t.broken
		}
	}
	return br, nil
}

// flush sends the pending control statements, before a statement that
// cannot share their batch.
func (t *tx) flush(ctx context.Context) error {
	if t.broken != nil {
		return t.broken
	}
	if len(t.pending) == 0 {
		return nil
	}
	br, err := t.send(ctx, nil)
	if err != nil {
		return err
	}
	if err := br.Close(); err != nil {
		t.broken = fmt.Errorf("transaction control: %w", err)
		return t.broken
	}
	return nil
}

// Exec, Query and QueryRow make t a db for the shared helpers.
func (t *tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.flush(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.conn.Exec(t.ctx(ctx), sql, args...)
}

func (t *tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.conn.Query(t.ctx(ctx), sql, args...)
}

func (t *tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.flush(ctx); err != nil {
		return errRow{err}
	}
	return t.conn.QueryRow(t.ctx(ctx), sql, args...)
}

// errRow is a pgx.Row that failed before it was sent.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// exec runs a record statement inside a savepoint, so that a failure (a
// unique violation the caller handles) leaves the transaction usable, as
// on SQLite. The pending control statements, the savepoint, the statement
// and the release go in one round trip; only a failure costs a second one,
// to roll back to the savepoint. Savepoints of the same name nest, so the
// fixed name is safe.
func (t *tx) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.broken != nil {
		return pgconn.CommandTag{}, t.broken
	}
	br, err := t.send(ctx, func(b *pgx.Batch) {
		b.Queue(`SAVEPOINT strata_stmt`)
		b.Queue(sql, args...)
		b.Queue(`RELEASE SAVEPOINT strata_stmt`)
	})
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	_, spErr := br.Exec()
	tag, err := br.Exec()
	if spErr == nil && err == nil {
		_, err = br.Exec()
	}
	closeErr := br.Close()
	if spErr != nil {
		t.broken = fmt.Errorf("savepoint: %w", spErr)
		return tag, t.broken
	}
	if err == nil {
		err = closeErr
	}
	if err != nil {
		// The savepoint exists (its statement ran); the transaction is in
		// the failed state until we roll back to it.
		if t.undo("strata_stmt"); t.broken != nil {
			return tag, errors.Join(err, t.broken)
		}
		return tag, err
	}
	return tag, nil
}

// logChange queues a change-log entry; commit appends the group's entries.
func (t *tx) logChange(r *strata.Record, action string) error {
	data, err := json.Marshal(r.Data)
	if err != nil {
		return fmt.Errorf("log change: %w", err)
	}
	t.changes = append(t.changes, strata.Change{
		CollectionID: r.Collection.ID, CollectionName: r.Collection.Name,
		RecordID: r.ID(), Action: action, Time: time.Now().UTC().Truncate(time.Millisecond), Record: data,
	})
	return nil
}

// appendChangesSQL numbers and inserts entries after the change-log lock
// is held. In READ COMMITTED every statement takes a new snapshot, so
// MAX(seq), evaluated once, sees the previous holder's committed entries.
const appendChangesSQL = `INSERT INTO _changes (seq, collection_id, collection_name, record_id, action, time, record)
	SELECT (SELECT COALESCE(MAX(seq), 0) FROM _changes) + o, ci, cn, ri, a, tm, rc::json
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
		WITH ORDINALITY AS u(ci, cn, ri, a, tm, rc, o)
	RETURNING seq`

// commit appends all (numbering it) and commits, in one round trip with
// the pending control statements; with lsn it also reads the WAL position
// after COMMIT, the write's consistency token.
//
// The lock is held until COMMIT, so the next appender numbers its entries
// only once these are visible: seq order is commit order, and a reader
// that sees seq N+1 already sees N. A pipeline stops at the first error,
// so a failed append never reaches COMMIT.
func (t *tx) commit(all []strata.Change, lsn bool) (uint64, error) {
	if t.broken != nil {
		return 0, t.broken
	}
	ctx := context.Background()
	n := len(all)
	br, err := t.send(ctx, func(b *pgx.Batch) {
		if n > 0 {
			cids, cnames, rids, actions, times, recs := make([]string, n), make([]string, n),
				make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			for i := range all {
				c := &all[i]
				cids[i], cnames[i], rids[i], actions[i] = c.CollectionID, c.CollectionName, c.RecordID, c.Action
				times[i], recs[i] = strata.FormatDate(c.Time), string(c.Record)
			}
			b.Queue(`SELECT pg_advisory_xact_lock($1)`, int64(changesLockKey))
			b.Queue(appendChangesSQL, cids, cnames, rids, actions, times, recs)
		}
		b.Queue(`COMMIT`)
		if lsn {
			b.Queue(`SELECT pg_current_wal_insert_lsn()::text`)
		}
	})
	if err != nil {
		return 0, err
	}
	defer br.Close()
	if n > 0 {
		if _, err := br.Exec(); err != nil {
			return 0, fmt.Errorf("log change: lock: %w", err)
		}
		rows, err := br.Query()
		if err != nil {
			return 0, fmt.Errorf("log change: %w", err)
		}
		seqs := make([]int64, 0, n)
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				rows.Close()
				return 0, fmt.Errorf("log change: %w", err)
			}
			seqs = append(seqs, seq)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, fmt.Errorf("log change: %w", err)
		}
		if len(seqs) != n {
			return 0, fmt.Errorf("log change: %d numbers for %d entries", len(seqs), n)
		}
		slices.Sort(seqs)
		for i := range all {
			all[i].Seq = seqs[i]
		}
	}
	tag, err := br.Exec()
	if err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	// COMMIT of a transaction that failed answers ROLLBACK, not an error.
	if tag.String() != "COMMIT" {
		return 0, fmt.Errorf("commit: the transaction was rolled back (%s)", tag)
	}
	t.pending = nil
	var pos uint64
	if lsn {
		// The write is committed whatever happens here: a zero position
		// makes the caller ask again.
		var v string
		if err := br.QueryRow().Scan(&v); err == nil {
			pos, _ = strata.ParseToken(v)
		}
	}
	br.Close()
	return pos, nil
}

// rollback ends a failed transaction; if that fails too, the connection is
// closed so the pool never hands out a connection inside a transaction.
func (t *tx) rollback() {
	if t.conn.PgConn().TxStatus() == 'I' {
		return // BEGIN never reached the server, or the server ended it
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := t.conn.Exec(ctx, "ROLLBACK"); err != nil {
		t.conn.Close(ctx)
	}
}
