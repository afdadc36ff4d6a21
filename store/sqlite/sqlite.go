// Package sqlite implements strata.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go, so `go run` needs no C compiler).
//
// One connection writes (SQLite allows one writer at a time; funnelling
// writes through one connection with BEGIN IMMEDIATE means writers queue in
// Go instead of failing with "database is locked"), and a pool of read-only
// connections reads concurrently thanks to WAL.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/strata-run/strata"
	"github.com/strata-run/strata/filter"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Store is a strata.Store backed by one SQLite file.
type Store struct {
	path   string
	writer *sql.DB
	reader *sql.DB

	// wconn is the one writer connection. Transactions on it are plain
	// BEGIN IMMEDIATE … COMMIT statements under wmu, so statements prepared
	// on the connection once (wstmts) serve every transaction.
	wmu   sync.Mutex
	wconn *sql.Conn

	qmu   sync.Mutex
	queue []*writeReq // transactions waiting for the writer (group commit)

	// stmts caches prepared read statements by SQL text. Generated SQL is
	// deterministic for a (collection, filter, sort) shape, so the set of
	// distinct texts stays small; it is capped all the same.
	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt
	wstmts map[string]*sql.Stmt // prepared on wconn; guarded by wmu

	m *metrics
}

var _ strata.Store = (*Store)(nil)

const maxCachedStmts = 512

// Options tune the store. The zero value is a sensible default.
type Options struct {
	// Readers is the size of the read pool; 0 means 2×GOMAXPROCS, at least 4.
	Readers int
	// Registerer, when set, receives the store's metrics: call latency,
	// group-commit sizes, the writer queue and pool usage.
	Registerer prometheus.Registerer
}

// Open opens (creating if needed) the database at path and applies the
// system schema.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite path: %w", err)
	}
	pragmas := []string{
		"busy_timeout(10000)",
		"journal_mode(WAL)",
		// NORMAL in WAL mode keeps every committed transaction across a
		// process crash (kill -9); only an OS crash can lose the last ones.
		"synchronous(NORMAL)",
		"foreign_keys(1)",
		"cache_size(-16000)",
		"temp_store(MEMORY)",
	}
	dsn := func(extra ...string) string {
		q := url.Values{}
		for _, p := range pragmas {
			q.Add("_pragma", p)
		}
		for i := 0; i+1 < len(extra); i += 2 {
			q.Add(extra[i], extra[i+1])
		}
		return "file:" + abs + "?" + q.Encode()
	}
	writer, err := sql.Open("sqlite", dsn())
	if err != nil {
		return nil, fmt.Errorf("open sqlite writer: %w", err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)

	s := &Store{path: abs, writer: writer, stmts: map[string]*sql.Stmt{}, wstmts: map[string]*sql.Stmt{}}
	if s.wconn, err = writer.Conn(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite writer: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		s.wconn.Close()
		writer.Close()
		return nil, err
	}

	n := opts.Readers
	if n <= 0 {
		n = max(4, 2*runtime.GOMAXPROCS(0))
	}
	reader, err := sql.Open("sqlite", dsn("mode", "ro"))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite readers: %w", err)
	}
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)
	reader.SetConnMaxLifetime(0)
	reader.SetConnMaxIdleTime(0)
	s.reader = reader
	s.m = newMetrics(s)
	if opts.Registerer != nil {
		if err := registerAll(opts.Registerer, s.m.collectors); err != nil {
			s.Close()
			return nil, fmt.Errorf("sqlite metrics: %w", err)
		}
	}
	return s, nil
}

// Close closes every connection.
func (s *Store) Close() error {
	s.stmtMu.Lock()
	for _, st := range s.stmts {
		st.Close()
	}
	s.stmts = nil
	s.stmtMu.Unlock()
	s.wmu.Lock()
	for _, st := range s.wstmts {
		st.Close()
	}
	s.wstmts = nil
	err := s.wconn.Close()
	s.wmu.Unlock()
	return errors.Join(s.reader.Close(), err, s.writer.Close())
}

// Ping checks that the database answers a query on the read pool; /readyz
// uses it. (The writer is busy by design under load, so it is not pinged.)
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.reader.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping sqlite reader: %w", err)
	}
	return nil
}

// registerAll registers cs, treating an identical earlier registration as
// an error so that two stores never silently share one metric.
func registerAll(reg prometheus.Registerer, cs []prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// migrations are applied in order; PRAGMA user_version records progress.
var migrations = []string{
	`CREATE TABLE IF NOT EXISTS _collections (
		id      TEXT PRIMARY KEY NOT NULL,
		name    TEXT NOT NULL UNIQUE COLLATE NOCASE,
		type    TEXT NOT NULL,
		data    JSON NOT NULL,
		created TEXT NOT NULL,
		updated TEXT NOT NULL
	);
	CREATE TABLE IF NOT EXISTS _params (
		id      TEXT PRIMARY KEY NOT NULL,
		value   JSON,
		created TEXT NOT NULL,
		updated TEXT NOT NULL
	);
	CREATE TABLE IF NOT EXISTS _changes (
		seq             INTEGER PRIMARY KEY AUTOINCREMENT,
		collection_id   TEXT NOT NULL,
		collection_name TEXT NOT NULL,
		record_id       TEXT NOT NULL,
		action          TEXT NOT NULL,
		time            TEXT NOT NULL,
		record          JSON
	);`,
}

func (s *Store) migrate(ctx context.Context) error {
	conn := s.wconn
	var version int
	if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("sqlite migrate: read version: %w", err)
	}
	for i := version; i < len(migrations); i++ {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlite migrate: %w", err)
		}
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite migration %d: %w", i+1, err)
		}
		// PRAGMA takes no bind parameters; i is our own integer.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite migration %d: %w", i+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlite migration %d: %w", i+1, err)
		}
	}
	return nil
}

// queryer is what reads need: a pool, or the write transaction.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// stmtQueryer runs reads through the statement cache of the read pool.
type stmtQueryer struct{ s *Store }

func (q stmtQueryer) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	q.s.stmtMu.Lock()
	st, ok := q.s.stmts[query]
	q.s.stmtMu.Unlock()
	if ok {
		return st, nil
	}
	st, err := q.s.reader.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	q.s.stmtMu.Lock()
	defer q.s.stmtMu.Unlock()
	if q.s.stmts == nil || len(q.s.stmts) >= maxCachedStmts {
		return nil, errNoCache{st}
	}
	if prev, ok := q.s.stmts[query]; ok {
		st.Close()
		return prev, nil
	}
	q.s.stmts[query] = st
	return st, nil
}

// errNoCache carries a statement that could not be cached: the caller uses
// it once and closes it.
type errNoCache struct{ st *sql.Stmt }

func (errNoCache) Error() string { return "statement not cached" }

func (q stmtQueryer) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := q.stmt(ctx, query)
	var nc errNoCache
	if errors.As(err, &nc) {
		defer nc.st.Close()
		return nc.st.QueryContext(ctx, args...)
	}
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (q stmtQueryer) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := q.stmt(ctx, query)
	var nc errNoCache
	if errors.As(err, &nc) {
		defer nc.st.Close()
		return nc.st.QueryRowContext(ctx, args...)
	}
	if err != nil {
		// Let the pool produce the same error through a Row.
		return q.s.reader.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// FindRecords implements strata.Reader on the read pool.
func (s *Store) FindRecords(ctx context.Context, q *strata.RecordQuery) ([]*strata.Record, error) {
	defer since(s.m.find, time.Now())
	return findRecords(ctx, stmtQueryer{s}, q)
}

// CountRecords implements strata.Reader on the read pool.
func (s *Store) CountRecords(ctx context.Context, q *strata.RecordQuery) (int, error) {
	defer since(s.m.count, time.Now())
	return countRecords(ctx, stmtQueryer{s}, q)
}

// Setting implements strata.Reader.
func (s *Store) Setting(ctx context.Context, key string) (json.RawMessage, bool, error) {
	defer since(s.m.setting, time.Now())
	return setting(ctx, s.reader, key)
}

// Changes implements strata.Reader.
func (s *Store) Changes(ctx context.Context, after int64, limit int) ([]strata.Change, error) {
	defer since(s.m.changes, time.Now())
	return changes(ctx, s.reader, after, limit)
}

// PruneChanges implements strata.Store. It goes through the writer, as
// every write does.
func (s *Store) PruneChanges(ctx context.Context, before time.Time, max int) (int, error) {
	var n int64
	_, err := s.Write(ctx, func(stx strata.Tx) error {
		res, err := stx.(*tx).exec(ctx, pruneChangesSQL, max, strata.FormatDate(before))
		if err != nil {
			return translate(fmt.Errorf("prune change log: %w", err), nil)
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// pruneChangesSQL deletes the oldest entries (at most ?1) older than ?2.
// The inner LIMIT bounds the scan: entries are in time order, so once the
// oldest are recent enough there is nothing further to find.
const pruneChangesSQL = `DELETE FROM _changes WHERE seq IN (SELECT seq FROM _changes ORDER BY seq LIMIT ?1)
	AND time < ?2 AND seq < (SELECT MAX(seq) FROM _changes)`

// LastChangeSeq implements strata.Store.
func (s *Store) LastChangeSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.reader.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM _changes`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("last change: %w", err)
	}
	return seq, nil
}

// Collections implements strata.Store. It reads through the writer so that a
// collection created a moment ago is always seen.
func (s *Store) Collections(ctx context.Context) ([]*strata.Collection, error) {
	defer since(s.m.collections, time.Now())
	s.wmu.Lock()
	defer s.wmu.Unlock()
	rows, err := s.wconn.QueryContext(ctx, `SELECT data FROM _collections ORDER BY created, rowid`)
	if err != nil {
		return nil, fmt.Errorf("load collections: %w", err)
	}
	defer rows.Close()
	var out []*strata.Collection
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("load collections: %w", err)
		}
		c := new(strata.Collection)
		if err := json.Unmarshal([]byte(data), c); err != nil {
			return nil, fmt.Errorf("load collections: decode: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// writeReq is one caller's transaction waiting for the writer.
type writeReq struct {
	ctx     context.Context
	fn      func(strata.Tx) error
	changes []strata.Change
	err     error
	done    chan struct{}
}

// maxGroup bounds how many queued transactions share one commit.
const maxGroup = 128

// Write implements strata.Store with group commit: callers queue their
// transactions, and whoever holds the writer runs everything queued in one
// BEGIN IMMEDIATE … COMMIT, each caller's fn inside its own SAVEPOINT. A
// failing fn rolls back only its savepoint; nobody is acknowledged before
// the shared COMMIT succeeds. Under load this turns N commits (N WAL
// appends) into one, and when idle a lone write takes the same path as
// before with no savepoint.
func (s *Store) Write(ctx context.Context, fn func(strata.Tx) error) ([]strata.Change, error) {
	defer since(s.m.write, time.Now())
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan struct{})}
	s.qmu.Lock()
	s.queue = append(s.queue, req)
	s.qmu.Unlock()

	s.wmu.Lock()
	for {
		select {
		case <-req.done:
			s.wmu.Unlock()
			return req.changes, req.err
		default:
		}
		s.qmu.Lock()
		n := min(len(s.queue), maxGroup)
		batch := s.queue[:n:n]
		s.queue = s.queue[n:]
		s.qmu.Unlock()
		s.commitGroup(batch)
	}
}

func (s *Store) commitGroup(batch []*writeReq) {
	defer since(s.m.commit, time.Now())
	s.m.groupSize.Observe(float64(len(batch)))
	finish := func(err error) {
		for _, r := range batch {
			if err != nil && r.err == nil {
				r.err, r.changes = err, nil
			}
			close(r.done)
		}
	}
	if s.wconn == nil {
		finish(errors.New("sqlite: store closed"))
		return
	}
	bg := context.Background()
	if _, err := s.wconn.ExecContext(bg, "BEGIN IMMEDIATE"); err != nil {
		finish(translate(fmt.Errorf("begin: %w", err), nil))
		return
	}
	grouped := len(batch) > 1
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = translate(err, nil)
			continue
		}
		if grouped {
			if _, err := s.wconn.ExecContext(bg, "SAVEPOINT w"); err != nil {
				s.rollback()
				finish(fmt.Errorf("savepoint: %w", err))
				return
			}
		}
		t := &tx{s: s}
		err := runFn(r.fn, t)
		switch {
		case err != nil && !grouped:
			s.rollback()
			r.err = err
			finish(nil)
			return
		case err != nil:
			r.err = err
			if _, rerr := s.wconn.ExecContext(bg, "ROLLBACK TO w"); rerr != nil {
				// SQLite may have ended the transaction itself (e.g. on a
				// full disk): nothing in this group can be trusted.
				s.rollback()
				finish(fmt.Errorf("rollback to savepoint: %w (after %w)", rerr, err))
				return
			}
			fallthrough
		case grouped:
			if _, err := s.wconn.ExecContext(bg, "RELEASE w"); err != nil {
				s.rollback()
				finish(fmt.Errorf("release savepoint: %w", err))
				return
			}
		}
		if r.err == nil {
			r.changes = t.changes
		}
	}
	if _, err := s.wconn.ExecContext(bg, "COMMIT"); err != nil {
		s.rollback()
		finish(translate(fmt.Errorf("commit: %w", err), nil))
		return
	}
	finish(nil)
}

// runFn runs a caller's transaction body, turning a panic into an error so
// that one bad request cannot take the writer (and everyone queued) down.
func runFn(fn func(strata.Tx) error, t *tx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic in write transaction: %v", v)
		}
	}()
	return fn(t)
}

// rollback ends a failed transaction. It ignores the caller's context: a
// cancelled request must still release the write lock.
func (s *Store) rollback() {
	if _, err := s.wconn.ExecContext(context.Background(), "ROLLBACK"); err != nil && !strings.Contains(err.Error(), "no transaction is active") {
		// The connection is in an unknown state: replace it (its prepared
		// statements go with it).
		for _, st := range s.wstmts {
			st.Close()
		}
		s.wstmts = map[string]*sql.Stmt{}
		s.wconn.Raw(func(any) error { return driver.ErrBadConn })
		s.wconn.Close()
		if c, err := s.writer.Conn(context.Background()); err == nil {
			s.wconn = c
		}
	}
}

// tx implements strata.Tx.
type tx struct {
	s       *Store
	changes []strata.Change
}

func (t *tx) FindRecords(ctx context.Context, q *strata.RecordQuery) ([]*strata.Record, error) {
	return findRecords(ctx, t, q)
}

func (t *tx) CountRecords(ctx context.Context, q *strata.RecordQuery) (int, error) {
	return countRecords(ctx, t, q)
}

// stmt returns a statement prepared once on the writer connection, or nil
// when the cache is full (the caller then runs the SQL directly).
func (t *tx) stmt(ctx context.Context, query string) *sql.Stmt {
	if st, ok := t.s.wstmts[query]; ok {
		return st
	}
	if len(t.s.wstmts) >= maxCachedStmts {
		return nil
	}
	st, err := t.s.wconn.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	t.s.wstmts[query] = st
	return st
}

// exec runs a statement in the transaction through the statement cache.
// DDL is not cached: it runs once.
func (t *tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.s.wconn.ExecContext(ctx, query, args...)
}

// ddl runs a schema statement without caching it.
func (t *tx) ddl(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.s.wconn.ExecContext(ctx, query, args...)
}

// QueryContext and QueryRowContext make tx a queryer with cached statements.
func (t *tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.s.wconn.QueryContext(ctx, query, args...)
}

func (t *tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.s.wconn.QueryRowContext(ctx, query, args...)
}

func (t *tx) Setting(ctx context.Context, key string) (json.RawMessage, bool, error) {
	return setting(ctx, t, key)
}

func (t *tx) Changes(ctx context.Context, after int64, limit int) ([]strata.Change, error) {
	return changes(ctx, t, after, limit)
}

func (t *tx) PutSetting(ctx context.Context, key string, value json.RawMessage) error {
	now := strata.NowDate()
	_, err := t.exec(ctx, `INSERT INTO _params (id, value, created, updated) VALUES (?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET value = excluded.value, updated = excluded.updated`, key, string(value), now, now)
	if err != nil {
		return fmt.Errorf("put setting %q: %w", key, err)
	}
	return nil
}

func setting(ctx context.Context, q queryer, key string) (json.RawMessage, bool, error) {
	var v sql.NullString
	err := q.QueryRowContext(ctx, `SELECT value FROM _params WHERE id = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read setting %q: %w", key, err)
	}
	return json.RawMessage(v.String), true, nil
}

func changes(ctx context.Context, q queryer, after int64, limit int) ([]strata.Change, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := q.QueryContext(ctx, `SELECT seq, collection_id, collection_name, record_id, action, time, record
		FROM _changes WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	defer rows.Close()
	var out []strata.Change
	for rows.Next() {
		var c strata.Change
		var tm string
		var rec sql.NullString
		if err := rows.Scan(&c.Seq, &c.CollectionID, &c.CollectionName, &c.RecordID, &c.Action, &tm, &rec); err != nil {
			return nil, fmt.Errorf("read changes: %w", err)
		}
		c.Time, _ = time.Parse(strata.DateLayout, tm)
		if rec.Valid {
			c.Record = json.RawMessage(rec.String)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// logChange appends to _changes inside the transaction.
func (t *tx) logChange(ctx context.Context, r *strata.Record, action string) error {
	data, err := json.Marshal(r.Data)
	if err != nil {
		return fmt.Errorf("log change: %w", err)
	}
	now := time.Now().UTC()
	res, err := t.exec(ctx, `INSERT INTO _changes (collection_id, collection_name, record_id, action, time, record)
		VALUES (?, ?, ?, ?, ?, ?)`, r.Collection.ID, r.Collection.Name, r.ID(), action, strata.FormatDate(now), string(data))
	if err != nil {
		return fmt.Errorf("log change: %w", err)
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("log change: %w", err)
	}
	t.changes = append(t.changes, strata.Change{
		Seq: seq, CollectionID: r.Collection.ID, CollectionName: r.Collection.Name,
		RecordID: r.ID(), Action: action, Time: now, Record: data,
	})
	return nil
}

// translate turns driver errors into domain errors. c, when known, lets a
// unique violation name the offending fields.
func translate(err error, c *strata.Collection) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return uniqueError(se.Error(), c)
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return &strata.Error{Code: strata.EUnavailable, Message: "The database is busy, try again.", Err: err}
		case sqlite3.SQLITE_INTERRUPT:
			return &strata.Error{Code: strata.EUnavailable, Message: "The request took too long.", Err: err}
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &strata.Error{Code: strata.EUnavailable, Message: "The request took too long.", Err: err}
	}
	return err
}

// uniqueError maps "UNIQUE constraint failed: posts.title, posts.slug" or
// "... index 'idx_x'" to validation_not_unique on each field involved.
func uniqueError(msg string, c *strata.Collection) error {
	data := map[string]any{}
	fe := strata.NewFieldError("validation_not_unique", "Value must be unique.", nil)
	_, detail, _ := strings.Cut(msg, "UNIQUE constraint failed: ")
	detail, _, _ = strings.Cut(detail, " (")
	if name, ok := strings.CutPrefix(detail, "index '"); ok {
		name = strings.TrimSuffix(name, "'")
		if c != nil {
			for _, idx := range c.Indexes {
				if p, err := strata.ParseIndex(idx); err == nil && strings.EqualFold(p.Name, name) {
					for _, col := range p.ColumnNames() {
						data[col] = fe
					}
				}
			}
		}
	} else {
		for _, part := range strings.Split(detail, ",") {
			_, col, ok := strings.Cut(strings.TrimSpace(part), ".")
			if ok {
				data[col] = fe
			}
		}
	}
	return &strata.Error{Code: strata.EInvalid, Message: "Failed to save record.", Data: data,
		Err: errors.New(msg)}
}

// filterEnv builds the compile environment for q's collection.
func filterEnv(q *strata.RecordQuery, alias string) *filter.Env {
	return &filter.Env{
		Dialect:    filter.SQLite,
		Collection: q.Collection,
		Alias:      alias,
		Schema:     q.Schema,
		Request:    q.Request,
	}
}
