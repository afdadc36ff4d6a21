package guard

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcraScript is gcra() in Lua: the TAT is kept in microseconds under the
// key, expiring when the schedule has passed, and the clock is Redis's own
// (TIME), so every node applies one clock to a shared key.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local nxt = tat + interval
local ahead = nxt - now
if ahead > window then
  return {0, ahead - window, tat - now}
end
redis.call('SET', KEYS[1], nxt, 'PX', math.ceil(ahead / 1000))
return {1, math.floor((window - ahead) / interval), ahead}
`)

// Redis is a Limiter shared by every node through Redis. When Redis is slow
// or unreachable it falls back to a local limiter (never to an error), and
// stays local for a cool-down before trying Redis again, so an outage costs
// one timeout per cool-down instead of one per request.
type Redis struct {
	client   redis.UniversalClient
	fallback *Local
	prefix   string
	timeout  time.Duration
	cooldown time.Duration
	log      *slog.Logger

	downUntil atomic.Int64 // unix nanos; Redis is skipped until then
	fallbacks atomic.Int64
}

// RedisOptions configure a Redis limiter.
type RedisOptions struct {
	Prefix   string        // key prefix (default "strata:rl:")
	Timeout  time.Duration // per check (default 50ms)
	Cooldown time.Duration // how long to stay local after a failure (default 5s)
	Logger   *slog.Logger
}

// NewRedis returns a Limiter on client with a local fallback.
func NewRedis(client redis.UniversalClient, opts RedisOptions) *Redis {
	r := &Redis{client: client, fallback: NewLocal(), prefix: opts.Prefix, timeout: opts.Timeout,
		cooldown: opts.Cooldown, log: opts.Logger}
	if r.prefix == "" {
		r.prefix = "strata:rl:"
	}
	if r.timeout == 0 {
		r.timeout = 50 * time.Millisecond
	}
	if r.cooldown == 0 {
		r.cooldown = 5 * time.Second
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	return r
}

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, key string, max int, window time.Duration) Decision {
	if max <= 0 || window <= 0 {
		return Decision{Allowed: true}
	}
	if time.Now().UnixNano() < r.downUntil.Load() {
		r.fallbacks.Add(1)
		return r.fallback.Allow(ctx, key, max, window)
	}
	// The check's own timeout, not the caller's: a client that hung up,
	// or a request near its deadline, says nothing of Redis's health and
	// must not send the whole node to local limits for the cooldown.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	interval := window.Microseconds() / int64(max)
	if interval <= 0 {
		// Finer than Redis's microsecond clock: no real limit.
		return Decision{Allowed: true, Remaining: max - 1}
	}
	res, err := gcraScript.Run(ctx, r.client, []string{r.prefix + key}, interval, window.Microseconds()).Int64Slice()
	if err != nil || len(res) != 3 {
		if r.downUntil.Swap(time.Now().Add(r.cooldown).UnixNano()) < time.Now().UnixNano() {
			r.log.Warn("rate limiter: Redis unavailable, using local limits", "err", err, "retry_in", r.cooldown)
		}
		r.fallbacks.Add(1)
		return r.fallback.Allow(ctx, key, max, window)
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	if res[0] == 0 {
		return Decision{RetryAfter: us(res[1]), Reset: us(res[2])}
	}
	return Decision{Allowed: true, Remaining: int(res[1]), Reset: us(res[2])}
}

// Fallbacks counts checks answered locally because Redis was unavailable.
func (r *Redis) Fallbacks() int64 { return r.fallbacks.Load() }
