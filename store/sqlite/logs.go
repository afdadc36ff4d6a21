package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/strata-run/strata"
	"github.com/strata-run/strata/filter"
)

// LogStore implements strata.LogStore in its own SQLite file (PocketBase's
// auxiliary.db), so that request logging never competes with data writes
// for the main database's writer. Add only enqueues on a bounded channel;
// one goroutine writes batches, and a full queue drops entries (counted)
// instead of slowing requests down.
type LogStore struct {
	db    *sql.DB
	coll  *strata.Collection
	queue chan strata.Log
	flush chan chan struct{}
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
	batch int
	every time.Duration

	written, dropped, failed prometheus.Counter
}

var _ strata.LogStore = (*LogStore)(nil)

// LogOptions tune a LogStore. The zero value is a sensible default.
type LogOptions struct {
	// Buffer is how many entries may wait to be written (default 4096).
	Buffer int
	// BatchSize is the most entries written in one transaction (default 500).
	BatchSize int
	// FlushEvery bounds how long an entry waits in the queue (default 1s).
	FlushEvery time.Duration
	// Registerer, when set, receives the written/dropped counters.
	Registerer prometheus.Registerer
}

// logsCollection describes the _logs table to the filter compiler, so that
// /api/logs filters and sorts with the same language as records.
func logsCollection() *strata.Collection {
	return &strata.Collection{ID: "_logs", Name: "_logs", Type: "base", System: true, Fields: []*strata.Field{
		{Name: "id", Type: strata.FieldText, System: true, PrimaryKey: true},
		{Name: "created", Type: strata.FieldDate, System: true},
		{Name: "level", Type: strata.FieldNumber, System: true},
		{Name: "message", Type: strata.FieldText, System: true},
		{Name: "data", Type: strata.FieldJSON, System: true},
	}}
}

// OpenLogs opens (creating if needed) the log database at path and starts
// its writer goroutine; Close stops it after writing what is queued.
func OpenLogs(ctx context.Context, path string, opts LogOptions) (*LogStore, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("logs path: %w", err)
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)"} {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", "file:"+abs+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open logs db: %w", err)
	}
	db.SetMaxOpenConns(4)
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS _logs (
			id      TEXT PRIMARY KEY NOT NULL,
			created TEXT NOT NULL,
			level   INTEGER NOT NULL DEFAULT 0,
			message TEXT NOT NULL DEFAULT '',
			data    JSON NOT NULL DEFAULT '{}'
		);
		CREATE INDEX IF NOT EXISTS _logs_idx_created ON _logs (created);
		CREATE INDEX IF NOT EXISTS _logs_idx_level ON _logs (level);`); err != nil {
		db.Close()
		return nil, fmt.Errorf("create _logs: %w", err)
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 4096
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = time.Second
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "strata", Subsystem: "logs", Name: name, Help: help})
	}
	l := &LogStore{
		db: db, coll: logsCollection(),
		queue: make(chan strata.Log, opts.Buffer), flush: make(chan chan struct{}),
		quit: make(chan struct{}), done: make(chan struct{}),
		batch: opts.BatchSize, every: opts.FlushEvery,
		written: counter("written_total", "Request log entries written to auxiliary.db."),
		dropped: counter("dropped_total", "Request log entries dropped because the write queue was full."),
		failed:  counter("write_errors_total", "Request log batches that failed to write."),
	}
	if opts.Registerer != nil {
		queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "strata", Subsystem: "logs", Name: "queue_length",
			Help: "Request log entries waiting to be written."}, func() float64 { return float64(len(l.queue)) })
		if err := registerAll(opts.Registerer, []prometheus.Collector{l.written, l.dropped, l.failed, queued}); err != nil {
			db.Close()
			return nil, fmt.Errorf("logs metrics: %w", err)
		}
	}
	go l.run()
	return l, nil
}

// Add implements strata.LogStore.
func (l *LogStore) Add(e strata.Log) {
	select {
	case l.queue <- e:
	default:
		l.dropped.Inc()
	}
}

// Flush waits until everything queued before the call is written.
func (l *LogStore) Flush(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case l.flush <- reply:
	case <-l.done:
		return errors.New("log store closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-reply:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes what is queued and closes the database.
func (l *LogStore) Close() error {
	l.once.Do(func() { close(l.quit) })
	<-l.done
	return l.db.Close()
}

func (l *LogStore) run() {
	defer close(l.done)
	tick := time.NewTicker(l.every)
	defer tick.Stop()
	buf := make([]strata.Log, 0, l.batch)
	// drain moves what is queued right now into buf, writing full batches.
	drain := func() {
		for {
			select {
			case e := <-l.queue:
				buf = append(buf, e)
				if len(buf) >= l.batch {
					l.write(buf)
					buf = buf[:0]
				}
			default:
				return
			}
		}
	}
	for {
		select {
		case e := <-l.queue:
			buf = append(buf, e)
			if len(buf) >= l.batch {
				l.write(buf)
				buf = buf[:0]
			}
		case <-tick.C:
			l.write(buf)
			buf = buf[:0]
		case reply := <-l.flush:
			drain()
			l.write(buf)
			buf = buf[:0]
			close(reply)
		case <-l.quit:
			drain()
			l.write(buf)
			return
		}
	}
}

func (l *LogStore) write(batch []strata.Log) {
	if len(batch) == 0 {
		return
	}
	if err := l.insert(batch); err != nil {
		l.failed.Inc()
		return
	}
	l.written.Add(float64(len(batch)))
}

func (l *LogStore) insert(batch []strata.Log) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO _logs (id, created, level, message, data) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, e := range batch {
		if e.ID == "" {
			e.ID = newLogID()
		}
		if e.Created.IsZero() {
			e.Created = time.Now()
		}
		data := e.RawData
		if data == nil {
			var err error
			if data, err = json.Marshal(e.Data); err != nil || e.Data == nil {
				data = []byte("{}")
			}
		}
		if _, err := st.ExecContext(ctx, e.ID, strata.FormatDate(e.Created), e.Level, e.Message, string(data)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// newLogID returns a 15-character [a-z0-9] id like PocketBase's whose first
// nine characters are the time in milliseconds (base 36): ids grow with
// time, so the log's primary-key index is appended to rather than written
// at random pages (the log takes one insert per request).
func newLogID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [15]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 8; i >= 0; i-- {
		b[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[ms%36]
		ms /= 36
	}
	rand.Read(b[9:])
	for i := 9; i < len(b); i++ {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

func (l *LogStore) query(filterExpr, sort string, limit, offset int) *strata.RecordQuery {
	q := &strata.RecordQuery{Collection: l.coll, Sort: sort, SortRestricted: true, Limit: limit, Offset: offset}
	if strings.TrimSpace(filterExpr) != "" {
		q.Filters = []strata.Filter{{Expr: filterExpr, Restricted: true}}
	}
	return q
}

// FindLogs implements strata.LogStore.
func (l *LogStore) FindLogs(ctx context.Context, lq strata.LogQuery) ([]strata.Log, error) {
	if strings.TrimSpace(lq.Sort) == "" {
		lq.Sort = "-created,-id"
	}
	recs, err := findRecords(ctx, l.db, l.query(lq.Filter, lq.Sort, lq.Limit, lq.Offset))
	if err != nil {
		return nil, err
	}
	out := make([]strata.Log, len(recs))
	for i, r := range recs {
		out[i] = logOf(r)
	}
	return out, nil
}

func logOf(r *strata.Record) strata.Log {
	e := strata.Log{}
	e.ID, _ = r.Data["id"].(string)
	if s, ok := r.Data["created"].(string); ok {
		e.Created, _ = time.Parse(strata.DateLayout, s)
	}
	if n, ok := r.Data["level"].(float64); ok {
		e.Level = int(n)
	}
	e.Message, _ = r.Data["message"].(string)
	e.Data, _ = r.Data["data"].(map[string]any)
	if e.Data == nil {
		e.Data = map[string]any{}
	}
	return e
}

// CountLogs implements strata.LogStore.
func (l *LogStore) CountLogs(ctx context.Context, filterExpr string) (int, error) {
	return countRecords(ctx, l.db, l.query(filterExpr, "", 0, 0))
}

// LogStats implements strata.LogStore.
func (l *LogStore) LogStats(ctx context.Context, filterExpr string) ([]strata.LogStat, error) {
	args := &filter.Args{Dialect: filter.SQLite}
	where := ""
	if strings.TrimSpace(filterExpr) != "" {
		expr, err := filter.ParseCached(filterExpr)
		if err != nil {
			return nil, err
		}
		env := filterEnv(l.query("", "", 0, 0), alias)
		env.Restricted = true
		cond, err := filter.Compile(expr, env, args)
		if err != nil {
			return nil, err
		}
		where = " WHERE " + cond
	}
	query, vals := args.Bind(`SELECT strftime('%Y-%m-%d %H:00:00', ` + alias + `.created) AS hour, COUNT(*)
		FROM _logs ` + alias + where + ` GROUP BY hour ORDER BY hour`)
	rows, err := l.db.QueryContext(ctx, query, vals...)
	if err != nil {
		return nil, translate(fmt.Errorf("log stats: %w", err), l.coll)
	}
	defer rows.Close()
	var out []strata.LogStat
	for rows.Next() {
		var hour string
		var st strata.LogStat
		if err := rows.Scan(&hour, &st.Total); err != nil {
			return nil, fmt.Errorf("log stats: %w", err)
		}
		st.Date, _ = time.Parse(time.DateTime, hour)
		out = append(out, st)
	}
	return out, rows.Err()
}

// Prune implements strata.LogStore.
func (l *LogStore) Prune(ctx context.Context, before time.Time) (int64, error) {
	res, err := l.db.ExecContext(ctx, `DELETE FROM _logs WHERE created < ?`, strata.FormatDate(before))
	if err != nil {
		return 0, fmt.Errorf("prune logs: %w", err)
	}
	return res.RowsAffected()
}
