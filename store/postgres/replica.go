package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/strata-run/strata"
)

// Read replicas and read-your-writes.
//
// Every write reports a consistency token (the primary's WAL insert
// position read right after COMMIT) through strata.NoteWrite. A read may
// carry a minimum token (strata.ReadAfter): it goes to a healthy replica
// whose replayed position (pg_last_wal_replay_lsn) is at or past it, and
// otherwise to the primary. Replayed positions are cached per replica,
// refreshed by the health loop and, when the cache says no replica is far
// enough, re-read on the connection that would serve the read: the read's
// snapshot is taken after that check, so it sees everything replayed up to
// the position checked. A read without a token goes to the least-lagged
// healthy replica.
//
// The health loop samples the primary's pg_current_wal_lsn and each
// replica's replay position; a replica's lag is how long ago the primary
// first reported a position the replica has not replayed yet. A replica
// that errors is taken out and retried after a back-off; one that lags past
// the bound is taken out until it catches up. Reads that fail on a replica
// for any reason but a fault in the query itself are retried on the
// primary, so losing replicas never fails a request.

// replica is one streaming replica.
type replica struct {
	name  string // host:port, for logs and stats
	label string // "replica-N" (N from 1, in configuration order): the metrics' pool label
	pool  *pgxpool.Pool

	healthy  atomic.Bool
	up       atomic.Bool   // the last check reached it
	lagging  atomic.Bool   // out of reads for lagging past the bound (not for failing)
	replayed atomic.Uint64 // last replay LSN read
	lag      atomic.Int64  // nanoseconds
	retryAt  atomic.Int64  // unix nanos before which an erroring replica is not tried
	reads    readCounts    // reads it served, by reason
	failures atomic.Int64
	checking atomic.Bool // one on-demand position check at a time
}

// replicaSet routes reads over the replicas of one primary.
type replicaSet struct {
	primary *pgxpool.Pool
	list    []*replica
	maxLag  time.Duration
	every   time.Duration
	retry   time.Duration
	log     *slog.Logger
	next    atomic.Uint64 // rotates among equally good replicas

	samplesMu sync.Mutex
	samples   []lsnSample // primary positions, oldest first, each distinct

	stop    chan struct{}
	done    chan struct{}
	started bool // the loop runs: close waits for it
}

// lsnSample is the first time the primary reported a WAL position.
type lsnSample struct {
	at  time.Time
	lsn uint64
}

func newReplicaSet(ctx context.Context, primary *pgxpool.Pool, base *pgxpool.Config, opts Options) (*replicaSet, error) {
	rs := &replicaSet{primary: primary, maxLag: opts.MaxReplicaLag, every: opts.ReplicaCheckEvery,
		retry: opts.ReplicaRetry, log: opts.Logger, stop: make(chan struct{}), done: make(chan struct{})}
	if rs.maxLag <= 0 {
		rs.maxLag = 10 * time.Second
	}
	if rs.every <= 0 {
		rs.every = 500 * time.Millisecond
	}
	if rs.retry <= 0 {
		rs.retry = 5 * time.Second
	}
	if rs.log == nil {
		rs.log = slog.Default()
	}
	for _, dsn := range opts.Replicas {
		cfg, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			rs.close()
			return nil, fmt.Errorf("postgres: parse replica dsn: %w", err)
		}
		cfg.MaxConns = base.MaxConns
		if opts.ReplicaMaxConns > 0 {
			cfg.MaxConns = opts.ReplicaMaxConns
		}
		cfg.MaxConnIdleTime = base.MaxConnIdleTime
		for k, v := range base.ConnConfig.RuntimeParams {
			if _, set := cfg.ConnConfig.RuntimeParams[k]; !set {
				cfg.ConnConfig.RuntimeParams[k] = v
			}
		}
		// Connections are made lazily: a replica that is down at start-up
		// is just not healthy yet.
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			rs.close()
			return nil, fmt.Errorf("postgres: replica: %w", err)
		}
		// The name never carries the DSN's credentials: it is logged and exported.
		rs.list = append(rs.list, &replica{name: fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port),
			label: fmt.Sprintf("replica-%d", len(rs.list)+1), pool: pool})
	}
	// One round before serving, so reads spread from the first request.
	rs.check(ctx)
	rs.started = true
	go rs.loop()
	return rs, nil
}

func (rs *replicaSet) close() {
	select {
	case <-rs.stop:
		return
	default:
		close(rs.stop)
	}
	if rs.started {
		<-rs.done
	}
	for _, r := range rs.list {
		r.pool.Close()
	}
}

func (rs *replicaSet) loop() {
	defer close(rs.done)
	t := time.NewTicker(rs.every)
	defer t.Stop()
	for {
		select {
		case <-rs.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(rs.every*2, time.Second))
		rs.check(ctx)
		cancel()
	}
}

// check samples the primary's position, then every replica's.
func (rs *replicaSet) check(ctx context.Context) {
	now := time.Now()
	if lsn, err := queryLSN(ctx, rs.primary, `SELECT pg_current_wal_lsn()::text`); err == nil {
		rs.addSample(now, lsn)
	} else {
		rs.log.Warn("postgres: read primary WAL position", "err", err)
	}
	var wg sync.WaitGroup
	for _, r := range rs.list {
		if !r.healthy.Load() && time.Now().UnixNano() < r.retryAt.Load() {
			continue
		}
		wg.Go(func() { rs.checkReplica(ctx, r) })
	}
	wg.Wait()
}

func (rs *replicaSet) checkReplica(ctx context.Context, r *replica) {
	lsn, err := queryLSN(ctx, r.pool, `SELECT pg_last_wal_replay_lsn()::text`)
	now := time.Now()
	if err != nil {
		rs.fail(r, err)
		return
	}
	r.up.Store(true)
	r.replayed.Store(lsn)
	lag := rs.lagOf(lsn, now)
	r.lag.Store(int64(lag))
	r.lagging.Store(lag > rs.maxLag)
	switch {
	case lag > rs.maxLag && r.healthy.Load():
		r.healthy.Store(false)
		rs.log.Warn("postgres: replica lags, reads go elsewhere", "replica", r.name, "lag", lag.String())
	case lag <= rs.maxLag && !r.healthy.Load():
		r.healthy.Store(true)
		rs.log.Info("postgres: replica serves reads", "replica", r.name, "lag", lag.String())
	}
}

// fail takes r out until retryAt.
func (rs *replicaSet) fail(r *replica, err error) {
	r.failures.Add(1)
	r.retryAt.Store(time.Now().Add(rs.retry).UnixNano())
	r.up.Store(false)
	r.lagging.Store(false)
	if r.healthy.Swap(false) {
		rs.log.Warn("postgres: replica failed, reads go elsewhere", "replica", r.name, "err", err)
	}
}

func (rs *replicaSet) addSample(at time.Time, lsn uint64) {
	rs.samplesMu.Lock()
	defer rs.samplesMu.Unlock()
	if n := len(rs.samples); n > 0 && rs.samples[n-1].lsn >= lsn {
		return
	}
	rs.samples = append(rs.samples, lsnSample{at: at, lsn: lsn})
	// Keep twice the bound: enough to tell "over the bound" apart.
	cut := 0
	for cut < len(rs.samples)-1 && at.Sub(rs.samples[cut].at) > 2*rs.maxLag {
		cut++
	}
	rs.samples = rs.samples[cut:]
}

// lagOf is how long ago the primary first reported a position past
// replayed (0 if none of the samples is).
func (rs *replicaSet) lagOf(replayed uint64, now time.Time) time.Duration {
	rs.samplesMu.Lock()
	defer rs.samplesMu.Unlock()
	for _, s := range rs.samples {
		if s.lsn > replayed {
			return now.Sub(s.at)
		}
	}
	return 0
}

// pick chooses the replica for a read with minimum token (0: none). check
// is set when the replica's cached position is behind token: the caller
// must re-read it before using the replica. Without a replica, why says
// why the primary serves the read.
func (rs *replicaSet) pick(token uint64) (r *replica, check bool, why readReason) {
	if token == strata.ReadLatest {
		return nil, false, reasonLatest
	}
	n := len(rs.list)
	start := int(rs.next.Add(1) % uint64(n))
	var best, behind *replica
	why = reasonUnhealthy
	for i := range n {
		c := rs.list[(start+i)%n]
		if !c.healthy.Load() {
			if c.lagging.Load() {
				why = reasonLagging
			}
			continue
		}
		if c.replayed.Load() >= token {
			if best == nil || c.lag.Load() < best.lag.Load() {
				best = c
			}
		} else if behind == nil || c.replayed.Load() > behind.replayed.Load() {
			behind = c
		}
	}
	if best != nil {
		return best, false, 0
	}
	if behind != nil {
		if behind.checking.CompareAndSwap(false, true) {
			return behind, true, 0
		}
		why = reasonToken
	}
	return nil, false, why
}

// errStale means a replica had not replayed far enough for a read.
var errStale = errors.New("replica behind the read's token")

// onReplica runs fn on a connection of r, after re-reading r's position
// when check is set.
func (rs *replicaSet) onReplica(ctx context.Context, r *replica, token uint64, check bool, fn func(db) error) error {
	if check {
		defer r.checking.Store(false)
	}
	actx, cancel := context.WithTimeout(ctx, time.Second)
	conn, err := r.pool.Acquire(actx)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Release()
	if check {
		lsn, err := queryLSN(ctx, conn, `SELECT pg_last_wal_replay_lsn()::text`)
		if err != nil {
			return err
		}
		r.replayed.Store(lsn)
		if lsn < token {
			return errStale
		}
	}
	if err := fn(conn); err != nil {
		return err
	}
	switch {
	case check:
		r.reads[reasonChecked].Add(1)
	case token == 0:
		r.reads[reasonNoToken].Add(1)
	default:
		r.reads[reasonCaughtUp].Add(1)
	}
	return nil
}

// read runs fn on a replica that may serve a read under ctx, or on the
// primary: when there is none, or the replica fails.
func (s *Store) read(ctx context.Context, o op, fn func(db) error) error {
	start := time.Now()
	rs := s.replicas
	if rs == nil {
		s.primaryReads[reasonNoReplicas].Add(1)
		defer s.m.observe(o, onPrimary, start)
		return fn(s.pool)
	}
	token := strata.ReadAfter(ctx)
	r, check, why := rs.pick(token)
	if r != nil {
		err := rs.onReplica(ctx, r, token, check, fn)
		if err == nil {
			s.m.observe(o, onReplica, start)
			return nil
		}
		if ctx.Err() != nil || (queryFault(err) && !schemaLag(err)) {
			s.m.observe(o, onReplica, start)
			return err
		}
		switch {
		case errors.Is(err, errStale):
			why = reasonToken
		case recoveryConflict(err):
			why = reasonRecoveryConflict
		case schemaLag(err):
			why = reasonSchemaLag
		default:
			why = reasonReplicaError
			rs.fail(r, err)
		}
	}
	s.primaryReads[why].Add(1)
	// A read retried here after its replica failed is timed whole: the
	// caller waited for both attempts.
	defer s.m.observe(o, onPrimary, start)
	return fn(s.pool)
}

// queryFault reports an error the primary would return too (bad input,
// a query Strata compiled wrongly): not the replica's fault, not retried.
func queryFault(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		var se *strata.Error
		return errors.As(err, &se) && se.Code != strata.EUnavailable
	}
	switch pe.Code[:2] {
	case "22", "23", "42", "2F", "P0":
		return true
	}
	return false
}

// schemaLag is a table or column the replica does not have yet: a schema
// change it has not replayed. The primary answers instead (with the same
// error if the table really is missing).
func schemaLag(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "42703")
}

// recoveryConflict is a query a replica cancelled to apply WAL: the
// replica is fine, the read is retried on the primary.
func recoveryConflict(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "40001"
}

// queryLSN runs a query returning one pg_lsn as text.
func queryLSN(ctx context.Context, q db, sql string) (uint64, error) {
	var v *string
	if err := q.QueryRow(ctx, sql).Scan(&v); err != nil {
		return 0, err
	}
	if v == nil {
		return 0, errors.New("no WAL position (not a streaming replica?)")
	}
	return strata.ParseToken(*v)
}

// ReplicaStats describes one replica as the router sees it.
type ReplicaStats struct {
	Name     string
	Healthy  bool
	Replayed uint64 // last replay position read
	Lag      time.Duration
	Reads    int64 // reads it served
	Failures int64 // errors that took it out
}

// ReadStats counts where reads went.
type ReadStats struct {
	Primary  int64 // reads served by the primary (with replicas configured)
	Replicas []ReplicaStats
}

// ReadStats reports read routing, for tests, metrics and operators.
func (s *Store) ReadStats() ReadStats {
	var st ReadStats
	if s.replicas == nil {
		return st
	}
	st.Primary = s.primaryReads.total()
	for _, r := range s.replicas.list {
		st.Replicas = append(st.Replicas, ReplicaStats{Name: r.name, Healthy: r.healthy.Load(), Replayed: r.replayed.Load(),
			Lag: time.Duration(r.lag.Load()), Reads: r.reads.total(), Failures: r.failures.Load()})
	}
	return st
}

// noteWrites gives each request of a committed group the group's token:
// the primary's WAL position after COMMIT (lsn, or read again if the
// commit's batch could not read it).
func (s *Store) noteWrites(reqs []*writeReq, lsn uint64) {
	if lsn == 0 {
		var err error
		lsn, err = queryLSN(context.Background(), s.pool, `SELECT pg_current_wal_insert_lsn()::text`)
		if err != nil {
			// The writes committed; their token is lost. The callers'
			// next reads may go to a replica that has not replayed them.
			s.replicas.log.Warn("postgres: read WAL position after commit", "err", err)
			return
		}
	}
	for _, r := range reqs {
		strata.NoteWrite(r.ctx, lsn)
	}
}

// HasReplicas reports whether reads may go to replicas: only then do
// consistency tokens change where a read goes, and are worth remembering
// beyond one node (api.Server.ShareTokens).
func (s *Store) HasReplicas() bool { return s.replicas != nil }
