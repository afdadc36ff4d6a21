// Command strata is the Strata server: one binary for every role.
//
//	strata serve [--http 127.0.0.1:8090] [--dir ./strata_data] [--redis redis://…]
//	strata superuser upsert|create|update|delete EMAIL [PASSWORD] [--dir DIR]
//	strata migrate --from DIR --db postgres://…
//	strata version
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/api"
	"github.com/strata-run/strata/cache"
	"github.com/strata-run/strata/guard"
	"github.com/strata-run/strata/mailer"
	"github.com/strata-run/strata/service"
	"github.com/strata-run/strata/store/postgres"
	"github.com/strata-run/strata/store/sqlite"
	"github.com/strata-run/strata/telemetry"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "strata:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return errors.New("missing command")
	}
	switch args[0] {
	case "serve":
		cmd := &serveCommand{stdout: stdout, stderr: stderr}
		if err := cmd.parse(args[1:]); err != nil {
			return err
		}
		return cmd.Run(ctx)
	case "superuser":
		return runSuperuser(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "backup":
		return runBackup(ctx, args[1:], stdout, stderr)
	case "migrate":
		return runMigrate(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "strata", version)
		return nil
	case "help", "--help", "-h":
		usage(stdout)
		return nil
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: strata <command> [flags]

Commands:
  serve                      start the HTTP server
  superuser upsert EMAIL PASSWORD
  superuser create EMAIL PASSWORD
  superuser update EMAIL PASSWORD
  superuser delete EMAIL
  backup ...                 create, list or restore backups (strata backup -h)
  migrate --from DIR --db postgres://…
                             copy a strata_data or PocketBase pb_data into PostgreSQL, verified
  bench ...                  load-test a Strata or PocketBase URL (strata bench -h)
  version                    print the version

Run "strata <command> -h" for the flags of a command.
`)
}

// hashingProcs sizes password hashing for serve and returns its slots: half
// the default GOMAXPROCS (at least one), added to GOMAXPROCS unless the
// environment sets it. It starts from the runtime's default each time, so
// that several serve runs in one process (tests) do not add up.
func hashingProcs() int {
	if _, set := os.LookupEnv("GOMAXPROCS"); set {
		return max(1, runtime.GOMAXPROCS(0)/2)
	}
	runtime.SetDefaultGOMAXPROCS()
	base := runtime.GOMAXPROCS(0)
	slots := max(1, base/2)
	runtime.GOMAXPROCS(base + slots)
	return slots
}

// storeConfig is shared by every command that opens the store.
type storeConfig struct {
	Dir string
	DB  string // empty: SQLite in Dir; postgres://…: PostgreSQL
	// Replicas are streaming replicas of DB that serve reads (PostgreSQL
	// only); MaxReplicaLag takes one out while it lags more.
	Replicas      replicaList
	MaxReplicaLag time.Duration

	// registry, when set (by serve), receives the store and cache metrics.
	registry prometheus.Registerer
	// hashSlots (set by serve) is how many password hashes run at once;
	// 0 lets the service pick.
	hashSlots int
	// traced (set by serve when tracing is on) wraps the store so that its
	// calls get spans.
	traced bool
	// noRecordCache (serve --record-cache=false) serves every read from
	// the store: the cache's benchmark baseline, not a production setting.
	noRecordCache bool
	// recordCacheMB and recordCacheTTL (serve) size the record cache.
	recordCacheMB  int
	recordCacheTTL time.Duration
}

func (c *storeConfig) register(fs *flag.FlagSet) {
	c.Dir = envOr("STRATA_DIR", "./strata_data")
	fs.StringVar(&c.Dir, "dir", c.Dir, "data directory (env STRATA_DIR)")
	c.DB = envOr("STRATA_DB", "")
	fs.StringVar(&c.DB, "db", c.DB, "database: empty for SQLite in --dir, or a postgres:// URL (env STRATA_DB)")
	if v := envOr("STRATA_DB_REPLICAS", ""); v != "" {
		for _, dsn := range strings.Split(v, ",") {
			if err := c.Replicas.Set(dsn); err != nil {
				fmt.Fprintf(os.Stderr, "STRATA_DB_REPLICAS: %v\n", err)
			}
		}
		c.Replicas.fromEnv = true
	}
	fs.Var(&c.Replicas, "db-replica", "postgres:// URL of a read replica of --db; repeatable (env STRATA_DB_REPLICAS, comma-separated)")
	c.MaxReplicaLag = 10 * time.Second
	if v := envOr("STRATA_DB_REPLICA_MAX_LAG", ""); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			c.MaxReplicaLag = d
		}
	}
	fs.DurationVar(&c.MaxReplicaLag, "db-replica-max-lag", c.MaxReplicaLag, "take a replica out of reads while it lags more (env STRATA_DB_REPLICA_MAX_LAG)")
}

// replicaList is a repeatable flag of replica URLs; a flag given on the
// command line replaces the list from the environment.
type replicaList struct {
	urls    []string
	fromEnv bool
}

func (l *replicaList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.urls, ",")
}

func (l *replicaList) Set(v string) error {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") {
		return errors.New("want a postgres:// URL")
	}
	if l.fromEnv {
		l.urls, l.fromEnv = nil, false
	}
	l.urls = append(l.urls, v)
	return nil
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

// open opens the store and the service layer.
func (c *storeConfig) open(ctx context.Context, log *slog.Logger) (*service.App, func(), error) {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("create data dir: %w", err)
	}
	var st strata.Store
	var err error
	switch {
	case c.DB == "":
		path := filepath.Join(c.Dir, "data.db")
		// A restore staged through the backups API takes effect here, with
		// the database closed; the files it replaces are kept beside it.
		if applied, rerr := sqlite.ApplyPendingRestore(path); rerr != nil {
			return nil, nil, fmt.Errorf("apply staged restore: %w", rerr)
		} else if applied {
			log.Warn("restored the database from a staged backup; the previous files are kept as data.db.pre-restore*")
		}
		st, err = sqlite.Open(ctx, path, sqlite.Options{Registerer: c.registry})
	case strings.HasPrefix(c.DB, "postgres://"), strings.HasPrefix(c.DB, "postgresql://"):
		st, err = postgres.Open(ctx, c.DB, postgres.Options{Replicas: c.Replicas.urls, MaxReplicaLag: c.MaxReplicaLag, Logger: log, Registerer: c.registry})
	default:
		err = errors.New("--db: want empty (SQLite in --dir) or a postgres:// URL")
	}
	if err == nil && c.DB == "" && len(c.Replicas.urls) > 0 {
		st.Close()
		err = errors.New("--db-replica needs --db postgres://…")
	}
	if err != nil {
		return nil, nil, err
	}
	if c.traced {
		system := telemetry.DBSQLite
		if c.DB != "" {
			system = telemetry.DBPostgreSQL
		}
		st = telemetry.TraceStore(st, system)
	}
	var rc strata.RecordCache // a nil interface: a nil *cache.Records would not read as "no cache"
	if !c.noRecordCache {
		rc = cache.New(cache.Options{Registerer: c.registry, MaxBytes: uint64(c.recordCacheMB) << 20, TTL: c.recordCacheTTL})
	}
	app, err := service.New(ctx, service.Config{Store: st, Logger: log, Cache: rc, Bus: newBus(), HashConcurrency: c.hashSlots})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	// SMTP when the settings enable it, else .eml files under <dir>/mail.
	app.SetMailer(mailer.New(app.SMTPConfig, filepath.Join(c.Dir, "mail"), log))
	return app, func() { st.Close() }, nil
}

// serveCommand is `strata serve`.
type serveCommand struct {
	stdout, stderr io.Writer
	HTTP           string
	Store          storeConfig
	LogLevel       string
	LogFormat      string
	ShutdownGrace  time.Duration
	DrainDelay     time.Duration
	MetricsAddr    string
	LogRequests    bool
	// Protection (docs/operations.md, "Rate limits and load shedding").
	Redis          string
	RedisPrefix    string
	Adaptive       bool
	MaxConcurrency int
	// ChangesRetention is how long change-log entries are kept (0: for
	// ever): realtime resume and the sync feed read back that far.
	ChangesRetention time.Duration
	QueueWait        time.Duration
	RequestTimeout   time.Duration
	// Shared list cache (docs/list-cache.md).
	ListCache    bool
	ListCacheTTL time.Duration
	// Tracing (docs/tracing.md); an empty endpoint leaves it off.
	OTLPEndpoint string
	OTLPProtocol string
	TraceSample  float64

	// ready, when set, receives the bound address (tests listen on :0);
	// metricsReady the metrics listener's, when --metrics-addr is given.
	ready, metricsReady chan<- string
}

func (c *serveCommand) parse(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.HTTP, "http", envOr("STRATA_HTTP", "127.0.0.1:8090"), "address to listen on (env STRATA_HTTP)")
	fs.StringVar(&c.LogLevel, "log-level", envOr("STRATA_LOG_LEVEL", "info"), "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", envOr("STRATA_LOG_FORMAT", "text"), "text or json")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", 20*time.Second, "how long in-flight requests may run after SIGTERM")
	fs.DurationVar(&c.DrainDelay, "drain-delay", 5*time.Second, "after SIGTERM, how long /readyz fails before the listener closes (lets the load balancer notice)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", envOr("STRATA_METRICS_ADDR", ""), "also serve /metrics without auth on this address, e.g. 127.0.0.1:9090 (env STRATA_METRICS_ADDR)")
	fs.BoolVar(&c.LogRequests, "log-requests", true, "write one log line per request")
	fs.StringVar(&c.Redis, "redis", envOr("STRATA_REDIS", ""), "redis:// URL that makes rate limits and read-your-writes cluster-wide; empty: per node (env STRATA_REDIS)")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", envOr("STRATA_REDIS_PREFIX", "strata:"), "prefix of every Redis key, to share one Redis between clusters (env STRATA_REDIS_PREFIX)")
	fs.BoolVar(&c.Adaptive, "adaptive-limit", true, "shed load over an adaptive concurrency limit with 503")
	fs.IntVar(&c.MaxConcurrency, "max-concurrency", 1000, "upper bound of the adaptive concurrency limit")
	c.ChangesRetention = 7 * 24 * time.Hour
	if v := envOr("STRATA_CHANGES_RETENTION", ""); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			c.ChangesRetention = d
		}
	}
	fs.DurationVar(&c.ChangesRetention, "changes-retention", c.ChangesRetention, "how long change-log entries are kept for realtime resume and the sync feed; 0 keeps them for ever (env STRATA_CHANGES_RETENTION)")
	fs.DurationVar(&c.QueueWait, "queue-wait", 50*time.Millisecond, "how long a request over the concurrency limit may wait before 503")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 30*time.Second, "deadline of every request, passed to the database (0: none; realtime streams excepted)")
	fs.BoolVar(&c.ListCache, "list-cache", envOr("STRATA_LIST_CACHE", "") == "true", "cache list responses in the --redis Redis, shared by all nodes (docs/list-cache.md; env STRATA_LIST_CACHE=true)")
	fs.DurationVar(&c.ListCacheTTL, "list-cache-ttl", 30*time.Second, "how long a cached list page lives at most")
	fs.BoolFunc("record-cache", "keep hot records in memory (default true; false only to measure the cache)", func(v string) error {
		on, err := strconv.ParseBool(v)
		c.Store.noRecordCache = !on
		return err
	})
	fs.IntVar(&c.Store.recordCacheMB, "record-cache-size", 64, "the record cache's memory budget in MiB (estimated)")
	fs.DurationVar(&c.Store.recordCacheTTL, "record-cache-ttl", 5*time.Minute, "how long a cached record is served at most without an invalidation reaching the node (a safety net)")
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", envOr("STRATA_OTLP_ENDPOINT", os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")),
		"OpenTelemetry collector URL, e.g. http://127.0.0.1:4318; empty: tracing off (env STRATA_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT)")
	fs.StringVar(&c.OTLPProtocol, "otlp-protocol", envOr("STRATA_OTLP_PROTOCOL", envOr("OTEL_EXPORTER_OTLP_PROTOCOL", telemetry.ProtocolHTTP)),
		"OTLP protocol: http/protobuf or grpc (env STRATA_OTLP_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL)")
	c.TraceSample = 1
	if v := envOr("STRATA_TRACE_SAMPLE", ""); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("STRATA_TRACE_SAMPLE %q: %w", v, err)
		}
		c.TraceSample = f
	}
	fs.Float64Var(&c.TraceSample, "trace-sample", c.TraceSample,
		"fraction of new traces recorded, 0 to 1; a sampled traceparent from the caller is always followed (env STRATA_TRACE_SAMPLE)")
	c.Store.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.ChangesRetention != 0 && c.ChangesRetention < time.Hour {
		// Realtime resume reads back 15 minutes and a node's own position
		// in the log may trail by seconds under load: shorter would lose
		// events, not only expire cursors.
		return errors.New("--changes-retention: want 0 (keep for ever) or at least 1h")
	}
	if c.Store.recordCacheMB < 1 || c.Store.recordCacheMB > 1<<20 {
		return errors.New("--record-cache-size: want 1 to 1048576 (MiB); --record-cache=false turns the cache off")
	}
	if c.Store.recordCacheTTL <= 0 {
		return errors.New("--record-cache-ttl: want a positive duration")
	}
	return nil
}

func (c *serveCommand) logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(telemetry.NewContextHandler(slog.NewJSONHandler(c.stderr, opts)))
	}
	return slog.New(telemetry.NewContextHandler(slog.NewTextHandler(c.stderr, opts)))
}

// Run serves until ctx is cancelled, then drains in-flight requests.
func (c *serveCommand) Run(ctx context.Context) error {
	log := c.logger()
	if _, set := os.LookupEnv("GOGC"); !set {
		// A node's live heap is small (caches are bounded) while it
		// allocates fast per request; collecting at 3x instead of 2x the
		// live heap halves GC work for ~25 MB more peak memory
		// (docs/benchmarks.md). GOGC in the environment still wins.
		debug.SetGCPercent(200)
	}
	// Password hashing (Argon2id, ~35 ms of a core each) runs on half the
	// cores. Each hashing slot gets a scheduler P of its own on top of
	// GOMAXPROCS, so that a flood of sign-ins keeps every P the node had
	// for other requests and the kernel shares the cores among them: a
	// sign-in flood at 10x the hashing capacity raised other clients'
	// read p99 2.6x with the hasher holding one of two Ps, 1.1x with its
	// own (docs/benchmarks.md). GOMAXPROCS in the environment still wins.
	c.Store.hashSlots = hashingProcs()
	reg := telemetry.NewRegistry()
	c.Store.registry = reg
	tracing, err := c.startTracing(ctx, log)
	if err != nil {
		return err
	}
	// Registered first, so it runs last: the spans of the final requests
	// and of shutdown are flushed after the server and store stop.
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tracing.Shutdown(sctx); err != nil {
			log.Warn("flush traces", "err", err)
		}
	}()
	c.Store.traced = tracing != nil
	app, closeStore, err := c.Store.open(ctx, log)
	if err != nil {
		return err
	}
	defer closeStore()
	// The request log lives in its own file, as PocketBase's auxiliary.db,
	// so that logging never queues behind data writes.
	logs, err := sqlite.OpenLogs(ctx, filepath.Join(c.Store.Dir, "auxiliary.db"), sqlite.LogOptions{Registerer: reg})
	if err != nil {
		return err
	}
	defer logs.Close()
	opts := api.Options{Logger: log, Registry: reg, Logs: logs, LogRequests: c.LogRequests, Starting: true,
		RequestTimeout: c.RequestTimeout, Tracing: tracing.Provider()}
	var rc *redis.Client
	if c.Redis != "" {
		ropts, err := redis.ParseURL(c.Redis)
		if err != nil {
			return fmt.Errorf("--redis: %w", err)
		}
		rc = redis.NewClient(ropts)
		defer rc.Close()
		opts.RateLimiter = guard.NewRedis(rc, guard.RedisOptions{Prefix: c.RedisPrefix + "rl:", Logger: log})
		if c.ListCache {
			enableListCache(app, rc, c.ListCacheTTL, log, reg)
		}
	} else if c.ListCache {
		return errors.New("--list-cache needs --redis")
	}
	if c.Adaptive {
		wait := c.QueueWait
		if wait <= 0 {
			wait = -1
		}
		opts.Concurrency = guard.NewConcurrency(guard.ConcurrencyOptions{MaxLimit: c.MaxConcurrency, MaxWait: wait})
	}
	handler := api.New(app, opts)
	if rc != nil {
		// Read-your-writes across nodes (docs/consistency-redis.md).
		handler.ShareTokens(api.NewRedisTokens(rc, api.RedisTokensOptions{Prefix: c.RedisPrefix + "ct:", Logger: log}))
	}
	withRealtime(ctx, app, handler, log)

	if c.MetricsAddr != "" {
		mln, err := net.Listen("tcp", c.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listen for metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", handler.MetricsHandler())
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go msrv.Serve(mln)
		defer msrv.Close()
		log.Info("metrics serving", "addr", mln.Addr().String())
		if c.metricsReady != nil {
			c.metricsReady <- mln.Addr().String()
		}
	}

	ln, err := net.Listen("tcp", c.HTTP)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("strata serving", "addr", ln.Addr().String(), "dir", c.Store.Dir, "version", version)
	fmt.Fprintf(c.stdout, "Server started at http://%s\n├─ REST API: http://%s/api/\n", ln.Addr(), ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	followCtx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	go app.FollowChanges(followCtx, time.Second)
	go prune(followCtx, "request logs", time.Hour, log, handler.PruneLogs)
	if c.ChangesRetention > 0 {
		go prune(followCtx, "change log", 10*time.Minute, log, func(ctx context.Context) (int, error) {
			return app.PruneChanges(ctx, time.Now().Add(-c.ChangesRetention))
		})
	}
	handler.SetReady(true)
	// Tests take this as "up": after SetReady, so /readyz already answers 200.
	if c.ready != nil {
		c.ready <- ln.Addr().String()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Fail /readyz first and keep serving for DrainDelay, so that the load
	// balancer stops routing here before the listener goes away; then let
	// in-flight requests finish.
	handler.Drain()
	log.Info("draining", "delay", c.DrainDelay)
	select {
	case <-time.After(c.DrainDelay):
	case err := <-errc:
		return err
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownGrace)
	defer cancel()
	return srv.Shutdown(sctx)
}

// startTracing sets up the OTLP exporter when --otlp-endpoint is given and
// makes it the process's global provider (for code that uses otel's global
// tracer) with exporter errors logged; nil when tracing is off.
func (c *serveCommand) startTracing(ctx context.Context, log *slog.Logger) (*telemetry.Tracing, error) {
	nodeID := newNodeID()
	tracing, err := telemetry.NewTracing(ctx, telemetry.TracingConfig{Endpoint: c.OTLPEndpoint, Protocol: c.OTLPProtocol,
		SampleRatio: c.TraceSample, ServiceVersion: version, NodeID: nodeID})
	if err != nil || tracing == nil {
		return nil, err
	}
	otel.SetTracerProvider(tracing.Provider())
	otel.SetTextMapPropagator(telemetry.Propagator)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "err", err) }))
	endpoint := c.OTLPEndpoint
	if u, err := url.Parse(endpoint); err == nil && u.User != nil {
		endpoint = u.Redacted()
	}
	log.Info("tracing on", "endpoint", endpoint, "protocol", c.OTLPProtocol, "sample", c.TraceSample, "node", nodeID)
	return tracing, nil
}

// newNodeID names this process in traces (service.instance.id).
func newNodeID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// prune runs fn at start and then every every until ctx ends, logging what
// it deleted. serve prunes the request log (settings.logs.maxDays, hourly)
// and the change log (--changes-retention, every ten minutes; every node
// may do it, deleting the same old entries twice is harmless).
func prune[N int | int64](ctx context.Context, what string, every time.Duration, log *slog.Logger, fn func(context.Context) (N, error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := fn(ctx); err != nil {
			if ctx.Err() == nil {
				log.Warn("prune "+what, "err", err)
			}
		} else if n > 0 {
			log.Info("pruned "+what, "deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func runSuperuser(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: strata superuser upsert|create|update|delete EMAIL [PASSWORD] [--dir DIR]")
	}
	action := args[0]
	fs := flag.NewFlagSet("superuser "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sc storeConfig
	sc.register(fs)
	// Flags may come before or after the positional arguments, as in PocketBase.
	var pos []string
	rest := args[1:]
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		rest = fs.Args()
		if len(rest) > 0 {
			pos = append(pos, rest[0])
			rest = rest[1:]
		}
	}
	need := 2
	if action == "delete" {
		need = 1
	}
	if len(pos) != need {
		return fmt.Errorf("superuser %s: expected %d arguments, got %d", action, need, len(pos))
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	app, closeStore, err := sc.open(ctx, log)
	if err != nil {
		return err
	}
	defer closeStore()
	email := pos[0]
	switch action {
	case "upsert":
		created, err := app.UpsertSuperuser(ctx, email, pos[1])
		if err != nil {
			return describe(err)
		}
		if created {
			fmt.Fprintf(stdout, "Successfully created superuser %q.\n", email)
		} else {
			fmt.Fprintf(stdout, "Successfully changed superuser %q password.\n", email)
		}
	case "create":
		if err := app.CreateSuperuser(ctx, email, pos[1]); err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "Successfully created new superuser %q.\n", email)
	case "update":
		if err := app.UpdateSuperuserPassword(ctx, email, pos[1]); err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "Successfully changed superuser %q password.\n", email)
	case "delete":
		if err := app.DeleteSuperuser(ctx, email); err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "Successfully deleted superuser %q.\n", email)
	default:
		return fmt.Errorf("unknown superuser action %q", action)
	}
	return nil
}

// describe renders a domain error with its per-field details for the
// terminal, e.g. "Failed to create record. (password: Must be at least 8 character(s).)".
func describe(err error) error {
	var e *strata.Error
	if !errors.As(err, &e) {
		return err
	}
	msg := e.Message
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(e.Data)) {
		if fe, ok := e.Data[k].(*strata.FieldError); ok {
			parts = append(parts, k+": "+fe.Message)
		}
	}
	if len(parts) > 0 {
		msg += " (" + strings.Join(parts, "; ") + ")"
	}
	return errors.New(msg)
}
