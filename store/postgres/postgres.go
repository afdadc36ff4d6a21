// Package postgres implements strata.Store on PostgreSQL with pgx.
//
// The table layout mirrors store/sqlite: one table per collection, one
// column per field (TEXT for text-like fields and dates, which sort
// lexically in strata.DateLayout; DOUBLE PRECISION for numbers; BOOLEAN;
// JSON for json, geoPoint and multi-valued fields), plus a BIGSERIAL
// "_rowid" giving insertion order. SQL is compiled with filter.Postgres.
//
// The change log is in commit order with no gaps: writes are
// group-committed, and a group appends its entries at the very end, after
// taking a transaction-level advisory lock, numbering them from
// MAX(seq)+1. The lock is held until COMMIT, so the next appender numbers
// its entries only after these are visible: seq order is commit order, and
// a reader that sees seq N+1 already sees N (write.go).
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/strata-run/strata"
)

// Advisory lock keys (arbitrary constants, "strata" in ASCII-ish).
const (
	migrateLockKey = 0x5354524154410001
	changesLockKey = 0x5354524154410002
)

// Options tune the store. The zero value is a sensible default.
type Options struct {
	// MaxConns is the pool size; 0 means pgxpool's default (max(4, GOMAXPROCS)).
	MaxConns int32
	// StatementTimeout bounds every statement; 0 means 30s, negative none.
	StatementTimeout time.Duration
	// WriteLanes is how many group commits may run at once (write.go); 0
	// means 2: one group runs its functions while another commits.
	WriteLanes int

	// Replicas are DSNs of streaming replicas of the primary. Reads go to
	// them when they have replayed past the caller's consistency token
	// (see replica.go); every write then reports its token.
	Replicas []string
	// ReplicaMaxConns is each replica's pool size; 0 means MaxConns.
	ReplicaMaxConns int32
	// MaxReplicaLag takes a replica out while it lags more; 0 means 10s.
	MaxReplicaLag time.Duration
	// ReplicaCheckEvery is how often lag and health are measured; 0 means 500ms.
	ReplicaCheckEvery time.Duration
	// ReplicaRetry is how long a failed replica stays out; 0 means 5s.
	ReplicaRetry time.Duration
	// Logger receives replica state changes; nil means slog.Default().
	Logger *slog.Logger
	// Registerer, when set, receives the store's metrics (metrics.go):
	// call latency, pool usage per primary and replica, replica lag and
	// health, and where reads went.
	Registerer prometheus.Registerer
}

// Store is a strata.Store on one PostgreSQL database (the primary).
type Store struct {
	pool     *pgxpool.Pool
	replicas *replicaSet // nil without replicas
	writes   writeQueue
	m        *metrics
	// primaryReads counts the reads the primary served, by why.
	primaryReads readCounts
}

var _ strata.Store = (*Store)(nil)

// Open connects to dsn (a postgres:// URL or key=value string; a
// search_path parameter selects the schema), applies the startup
// migrations under an advisory lock and returns the store.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse dsn: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	// Keep connections: reconnecting under load costs more than idling.
	cfg.MaxConnIdleTime = 30 * time.Minute
	timeout := opts.StatementTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	if timeout > 0 {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(timeout.Milliseconds(), 10)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	lanes := opts.WriteLanes
	if lanes <= 0 {
		lanes = 2
	}
	s := &Store{pool: pool, writes: writeQueue{lanes: make(chan struct{}, lanes)}}
	s.m = newMetrics(s)
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, pgbouncerHint(err)
	}
	if len(opts.Replicas) > 0 {
		if s.replicas, err = newReplicaSet(ctx, pool, cfg, opts); err != nil {
			pool.Close()
			return nil, err
		}
	}
	if opts.Registerer != nil {
		if err := s.m.register(opts.Registerer); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Close stops the health loop and closes the pools.
func (s *Store) Close() error {
	if s.replicas != nil {
		s.replicas.close()
	}
	s.pool.Close()
	return nil
}

// Pool is the connection pool, for tests and tools.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// migrations are applied in order, each in its own transaction; the
// _strata_migrations table records progress.
var migrations = []string{
	`CREATE TABLE _collections (
		id      TEXT PRIMARY KEY NOT NULL,
		name    TEXT NOT NULL,
		type    TEXT NOT NULL,
		data    JSON NOT NULL,
		created TEXT NOT NULL,
		updated TEXT NOT NULL,
		_rowid  BIGSERIAL
	);
	CREATE UNIQUE INDEX _collections_name_key ON _collections (LOWER(name));
	CREATE TABLE _params (
		id      TEXT PRIMARY KEY NOT NULL,
		value   JSON,
		created TEXT NOT NULL,
		updated TEXT NOT NULL
	);
	CREATE TABLE _changes (
		seq             BIGINT PRIMARY KEY,
		collection_id   TEXT NOT NULL,
		collection_name TEXT NOT NULL,
		record_id       TEXT NOT NULL,
		action          TEXT NOT NULL,
		time            TEXT NOT NULL,
		record          JSON
	);`,
}

// migrate applies pending migrations. The advisory lock makes it safe for
// several nodes starting at once: the others wait, then find nothing to do.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres migrate: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLockKey)); err != nil {
		return fmt.Errorf("postgres migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS _strata_migrations (version INT PRIMARY KEY, applied TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("postgres migrate: %w", err)
	}
	var version int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM _strata_migrations`).Scan(&version); err != nil {
		return fmt.Errorf("postgres migrate: read version: %w", err)
	}
	for i := version; i < len(migrations); i++ {
		if _, err := tx.Exec(ctx, migrations[i]); err != nil {
			return fmt.Errorf("postgres migration %d: %w", i+1, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO _strata_migrations (version, applied) VALUES ($1, $2)`, i+1, strata.NowDate()); err != nil {
			return fmt.Errorf("postgres migration %d: %w", i+1, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres migrate: commit: %w", err)
	}
	return nil
}

// db is what reads need: the pool or a transaction.
type db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// FindRecords implements strata.Reader; it may be served by a replica.
func (s *Store) FindRecords(ctx context.Context, q *strata.RecordQuery) (out []*strata.Record, err error) {
	err = s.read(ctx, opFind, func(d db) error {
		var err error
		out, err = findRecords(ctx, d, q)
		return err
	})
	return out, err
}

// CountRecords implements strata.Reader; it may be served by a replica.
func (s *Store) CountRecords(ctx context.Context, q *strata.RecordQuery) (n int, err error) {
	err = s.read(ctx, opCount, func(d db) error {
		var err error
		n, err = countRecords(ctx, d, q)
		return err
	})
	return n, err
}

// Setting implements strata.Reader. Settings are read from the primary:
// they are read rarely, right after they change.
func (s *Store) Setting(ctx context.Context, key string) (json.RawMessage, bool, error) {
	defer s.m.observe(opSetting, onPrimary, time.Now())
	return setting(ctx, s.pool, key)
}

// Changes implements strata.Reader; it may be served by a replica, which
// replays the log in commit order too, so a tail never skips an entry.
func (s *Store) Changes(ctx context.Context, after int64, limit int) (out []strata.Change, err error) {
	err = s.read(ctx, opChanges, func(d db) error {
		var err error
		out, err = changes(ctx, d, after, limit)
		return err
	})
	return out, err
}

// PruneChanges implements strata.Store. It needs no lock: appenders number
// from MAX(seq), and the newest entry is never deleted.
func (s *Store) PruneChanges(ctx context.Context, before time.Time, max int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM _changes WHERE seq IN (SELECT seq FROM _changes ORDER BY seq LIMIT $1)
		AND time < $2 AND seq < (SELECT MAX(seq) FROM _changes)`, max, strata.FormatDate(before))
	if err != nil {
		return 0, translate(fmt.Errorf("prune change log: %w", err), nil)
	}
	return int(tag.RowsAffected()), nil
}

// LastChangeSeq implements strata.Store. It asks the primary: a follower
// starting from a lagging replica's end would replay entries it already saw.
func (s *Store) LastChangeSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM _changes`).Scan(&seq); err != nil {
		return 0, translate(fmt.Errorf("last change: %w", err), nil)
	}
	return seq, nil
}

// Collections implements strata.Store.
func (s *Store) Collections(ctx context.Context) ([]*strata.Collection, error) {
	defer s.m.observe(opCollections, onPrimary, time.Now())
	rows, err := s.pool.Query(ctx, `SELECT data::text FROM _collections ORDER BY created, _rowid`)
	if err != nil {
		return nil, translate(fmt.Errorf("load collections: %w", err), nil)
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

func (t *tx) FindRecords(ctx context.Context, q *strata.RecordQuery) ([]*strata.Record, error) {
	return findRecords(ctx, t, q)
}

func (t *tx) CountRecords(ctx context.Context, q *strata.RecordQuery) (int, error) {
	return countRecords(ctx, t, q)
}

func (t *tx) Setting(ctx context.Context, key string) (json.RawMessage, bool, error) {
	return setting(ctx, t, key)
}

func (t *tx) Changes(ctx context.Context, after int64, limit int) ([]strata.Change, error) {
	return changes(ctx, t, after, limit)
}

func (t *tx) PutSetting(ctx context.Context, key string, value json.RawMessage) error {
	now := strata.NowDate()
	_, err := t.Exec(ctx, `INSERT INTO _params (id, value, created, updated) VALUES ($1, $2::text::json, $3, $3)
		ON CONFLICT (id) DO UPDATE SET value = excluded.value, updated = excluded.updated`, key, string(value), now)
	if err != nil {
		return translate(fmt.Errorf("put setting %q: %w", key, err), nil)
	}
	return nil
}

func setting(ctx context.Context, q db, key string) (json.RawMessage, bool, error) {
	var v *string
	err := q.QueryRow(ctx, `SELECT value::text FROM _params WHERE id = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, translate(fmt.Errorf("read setting %q: %w", key, err), nil)
	}
	if v == nil {
		return json.RawMessage(""), true, nil
	}
	return json.RawMessage(*v), true, nil
}

func changes(ctx context.Context, q db, after int64, limit int) ([]strata.Change, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := q.Query(ctx, `SELECT seq, collection_id, collection_name, record_id, action, time, record::text
		FROM _changes WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, translate(fmt.Errorf("read changes: %w", err), nil)
	}
	defer rows.Close()
	var out []strata.Change
	for rows.Next() {
		var c strata.Change
		var tm string
		var rec *string
		if err := rows.Scan(&c.Seq, &c.CollectionID, &c.CollectionName, &c.RecordID, &c.Action, &tm, &rec); err != nil {
			return nil, fmt.Errorf("read changes: %w", err)
		}
		c.Time, _ = time.Parse(strata.DateLayout, tm)
		if rec != nil {
			c.Record = json.RawMessage(*rec)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// translate turns driver errors into domain errors. c, when known, lets a
// unique violation name the offending fields.
func translate(err error, c *strata.Collection) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return uniqueError(pe, c)
		case "57014": // query_canceled (statement_timeout)
			return &strata.Error{Code: strata.EUnavailable, Message: "The request took too long.", Err: err}
		case "40001", "40P01", "55P03", "53300": // serialization, deadlock, lock timeout, too many connections
			return &strata.Error{Code: strata.EUnavailable, Message: "The database is busy, try again.", Err: err}
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &strata.Error{Code: strata.EUnavailable, Message: "The request took too long.", Err: err}
	}
	return err
}

// uniqueError maps a unique violation to validation_not_unique on each
// column of the violated index, found by its name among c's indexes (the
// primary key is "id").
func uniqueError(pe *pgconn.PgError, c *strata.Collection) error {
	data := map[string]any{}
	fe := strata.NewFieldError("validation_not_unique", "Value must be unique.", nil)
	name := pe.ConstraintName
	if strings.HasSuffix(strings.TrimRight(name, "0123456789"), "_pkey") {
		data["id"] = fe
	} else if c != nil {
		for _, idx := range c.Indexes {
			if p, err := strata.ParseIndex(idx); err == nil && strings.EqualFold(p.Name, name) {
				for _, col := range p.ColumnNames() {
					data[col] = fe
				}
			}
		}
	}
	return &strata.Error{Code: strata.EInvalid, Message: "Failed to save record.", Data: data, Err: pe}
}
