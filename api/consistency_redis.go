package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Cluster-wide token memory (docs/consistency-redis.md).
//
// A node remembers each caller's latest write token only for the requests
// it serves itself. Behind a load balancer a client that writes through one
// node and reads through another without echoing the consistency header
// would read a lagging replica; RedisTokens closes that gap by keeping the
// latest token per caller key in Redis as well. The node's own memory is
// still read first and the largest token wins, so Redis can only make reads
// fresher, and a Redis that is slow or down only costs the cross-node
// guarantee, never a request.

// noteTokenScript raises KEYS[1] to ARGV[1] (a token as 16 hex digits)
// unless it already holds a token at or past it, and sets the TTL
// (ARGV[2], ms) when it does. Tokens are compared as two 32-bit halves:
// Lua numbers are doubles, exact only to 2^53.
var noteTokenScript = redis.NewScript(`
local new = ARGV[1]
local cur = redis.call('GET', KEYS[1])
if cur and string.len(cur) == 16 then
  local ch, nh = tonumber(string.sub(cur, 1, 8), 16), tonumber(string.sub(new, 1, 8), 16)
  if ch and (ch > nh or (ch == nh and tonumber(string.sub(cur, 9, 16), 16) >= tonumber(string.sub(new, 9, 16), 16))) then
    return 0
  end
end
redis.call('SET', KEYS[1], new, 'PX', ARGV[2])
return 1
`)

// RedisTokens shares the latest consistency token of each caller between
// the nodes of a cluster through Redis. Give it to Server.ShareTokens.
type RedisTokens struct {
	client   redis.UniversalClient
	prefix   string
	ttl      time.Duration
	timeout  time.Duration
	cooldown time.Duration
	log      *slog.Logger
	// logs samples the warnings: an outage would otherwise log once per
	// request after every cool-down.
	logs *rate.Limiter

	downUntil atomic.Int64 // unix nanos; Redis is skipped until then
	fallbacks atomic.Int64
	fallbackC prometheus.CounterFunc
}

// RedisTokensOptions configure RedisTokens; the zero value is sensible.
type RedisTokensOptions struct {
	// Prefix is put before every key (default "strata:ct:"), so that
	// clusters can share one Redis.
	Prefix string
	// TTL is how long a caller's token is kept after its last write
	// (default 5 minutes): far longer than any replica lag worth serving
	// reads under, after which the token no longer matters.
	TTL time.Duration
	// Timeout bounds each Redis round trip (default 20ms).
	Timeout time.Duration
	// Cooldown is how long the node stays local after a Redis error
	// (default 2s), so an outage costs one timeout per cool-down instead
	// of one per request.
	Cooldown time.Duration
	Logger   *slog.Logger
}

// NewRedisTokens returns a token memory on client.
func NewRedisTokens(client redis.UniversalClient, opts RedisTokensOptions) *RedisTokens {
	t := &RedisTokens{client: client, prefix: opts.Prefix, ttl: opts.TTL, timeout: opts.Timeout,
		cooldown: opts.Cooldown, log: opts.Logger, logs: rate.NewLimiter(rate.Every(10*time.Second), 1)}
	if t.prefix == "" {
		t.prefix = "strata:ct:"
	}
	if t.ttl <= 0 {
		t.ttl = 5 * time.Minute
	}
	if t.timeout <= 0 {
		t.timeout = 20 * time.Millisecond
	}
	if t.cooldown <= 0 {
		t.cooldown = 2 * time.Second
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	t.fallbackC = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "strata", Subsystem: "consistency", Name: "redis_fallbacks_total",
		Help: "Consistency-token lookups and notes answered by the node's own memory because Redis was unavailable.",
	}, func() float64 { return float64(t.fallbacks.Load()) })
	return t
}

// Fallbacks counts lookups and notes that skipped Redis because it was
// unavailable (or in its cool-down after an error).
func (t *RedisTokens) Fallbacks() int64 { return t.fallbacks.Load() }

// up reports whether Redis may be tried now; when not, the call counts as
// a fallback.
func (t *RedisTokens) up() bool {
	if time.Now().UnixNano() < t.downUntil.Load() {
		t.fallbacks.Add(1)
		return false
	}
	return true
}

// failed starts a cool-down after a Redis error.
func (t *RedisTokens) failed(op string, err error) {
	t.fallbacks.Add(1)
	t.downUntil.Store(time.Now().Add(t.cooldown).UnixNano())
	if t.logs.Allow() {
		t.log.Warn("consistency tokens: Redis unavailable, using this node's memory only",
			"op", op, "err", err, "retry_in", t.cooldown)
	}
}

// get returns the largest token Redis holds for keys (0: none, or Redis
// unavailable).
func (t *RedisTokens) get(ctx context.Context, keys []string) uint64 {
	if len(keys) == 0 || !t.up() {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.timeout)
	defer cancel()
	cmds := make([]*redis.StringCmd, len(keys))
	// The pipeline's own error is its first command's; each is read below.
	_, _ = t.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, t.prefix+k)
		}
		return nil
	})
	var token uint64
	for _, c := range cmds {
		v, err := c.Result()
		if errors.Is(err, redis.Nil) {
			continue // no token for this key
		}
		if err != nil {
			t.failed("get", err)
			return 0
		}
		// A value this code did not write is ignored: it can only make
		// reads staler, never fail them.
		if n, err := strconv.ParseUint(v, 16, 64); err == nil {
			token = max(token, n)
		}
	}
	return token
}

// note raises the token of every key to token, keeping the largest.
func (t *RedisTokens) note(ctx context.Context, keys []string, token uint64) {
	if len(keys) == 0 || token == 0 || !t.up() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.timeout)
	defer cancel()
	v, ttl := fmt.Sprintf("%016x", token), t.ttl.Milliseconds()
	// One EVAL per key (a key each, so Redis Cluster can place them on any
	// slot), all in one round trip. EVAL rather than EVALSHA: a pipeline
	// cannot retry NOSCRIPT, and Redis caches the compiled script anyway.
	_, err := t.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			noteTokenScript.Eval(ctx, p, []string{t.prefix + k}, v, ttl)
		}
		return nil
	})
	if err != nil {
		t.failed("note", err)
	}
}
