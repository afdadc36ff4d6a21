package service

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/strata-run/strata"
)

// Bucket is a token bucket: Burst attempts at once, then one per Every.
type Bucket struct {
	Every time.Duration
	Burst int
}

// AuthLimits bound credential checks (password, OTP, MFA, reset and
// email-change confirmation) and mail-sending requests. They are keyed by
// client IP and by (IP, identity), never by identity alone: an attacker
// can exhaust only their own buckets, so they cannot lock a victim out of
// an account. PocketBase ships its limiter off; these are on by default.
type AuthLimits struct {
	// Disabled turns every limit off (benchmarks, trusted test rigs).
	Disabled bool
	// PerIP is shared by every credential check from one IP.
	PerIP Bucket
	// PerIPIdentity is one IP guessing one identity (email, username,
	// otpId, token).
	PerIPIdentity Bucket
	// MailPerIP and MailPerIPAddress bound request-verification,
	// request-password-reset, request-email-change and request-otp: mail
	// is not free, and a recipient should not be flooded.
	MailPerIP        Bucket
	MailPerIPAddress Bucket
	// MaxKeys bounds each limiter's memory; idle buckets are evicted first.
	MaxKeys int
}

// DefaultAuthLimits are generous for people and hard on scripts: 10 tries
// at one account from one IP then one per 30 s; 30 checks from one IP then
// one per 2 s.
func DefaultAuthLimits() AuthLimits {
	return AuthLimits{
		PerIP:            Bucket{Every: 2 * time.Second, Burst: 30},
		PerIPIdentity:    Bucket{Every: 30 * time.Second, Burst: 10},
		MailPerIP:        Bucket{Every: 10 * time.Second, Burst: 20},
		MailPerIPAddress: Bucket{Every: time.Minute, Burst: 5},
		MaxKeys:          100_000,
	}
}

// otpMaxFails and otpFailWindow: an OTP accepts 5 wrong codes per 180 s
// (API.md §7.3) whoever sends them; a fresh OTP has a fresh budget, so this
// does not lock the account.
const (
	otpMaxFails   = 5
	otpFailWindow = 180 * time.Second
)

// RetryAfter is wrapped by every rate-limit refusal: how long to wait
// before the next attempt can succeed (the HTTP layer sends Retry-After).
type RetryAfter struct {
	Wait time.Duration
}

func (r *RetryAfter) Error() string { return fmt.Sprintf("rate limited; retry after %s", r.Wait) }

func tooMany(wait time.Duration) error {
	if wait < time.Second {
		wait = time.Second
	}
	return &strata.Error{Code: strata.ETooMany, Message: "Too Many Requests.", Err: &RetryAfter{Wait: wait}}
}

// keyedLimiter holds one token bucket per key in a bounded map.
type keyedLimiter struct {
	every time.Duration
	burst int
	max   int

	mu sync.Mutex
	m  map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newKeyedLimiter(b Bucket, max int) *keyedLimiter {
	if b.Burst <= 0 {
		b.Burst = 1
	}
	if b.Every <= 0 {
		b.Every = time.Second
	}
	if max <= 0 {
		max = 100_000
	}
	return &keyedLimiter{every: b.Every, burst: b.Burst, max: max, m: map[string]*bucket{}}
}

// limiter returns key's bucket, creating it; the caller holds mu.
func (k *keyedLimiter) limiter(key string, now time.Time) *rate.Limiter {
	b := k.m[key]
	if b == nil {
		if len(k.m) >= k.max {
			k.evict(now)
		}
		b = &bucket{lim: rate.NewLimiter(rate.Every(k.every), k.burst)}
		k.m[key] = b
	}
	b.seen = now
	return b.lim
}

// evict drops buckets idle long enough to have refilled (forgetting them
// changes nothing), then, if a flood of keys still fills the map, arbitrary
// ones down to 90% so that eviction stays amortised O(1).
func (k *keyedLimiter) evict(now time.Time) {
	full := k.every * time.Duration(k.burst)
	for key, b := range k.m {
		if now.Sub(b.seen) > full {
			delete(k.m, key)
		}
	}
	for key := range k.m {
		if len(k.m) < k.max*9/10 {
			break
		}
		delete(k.m, key)
	}
}

// take spends one token of key, or reports how long until one is free.
func (k *keyedLimiter) take(key string) (time.Duration, bool) {
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	lim := k.limiter(key, now)
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// blocked reports whether key has no token left, without spending one.
func (k *keyedLimiter) blocked(key string) (time.Duration, bool) {
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.m[key]
	if b == nil || b.lim.TokensAt(now) >= 1 {
		return 0, false
	}
	r := b.lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return d, true
}

// authLimiters are the live limiters for one AuthLimits.
type authLimiters struct {
	cfg              AuthLimits
	ip, ipIdentity   *keyedLimiter
	mailIP, mailAddr *keyedLimiter
	otpFails         *keyedLimiter
}

func newAuthLimiters(cfg AuthLimits) *authLimiters {
	return &authLimiters{
		cfg:        cfg,
		ip:         newKeyedLimiter(cfg.PerIP, cfg.MaxKeys),
		ipIdentity: newKeyedLimiter(cfg.PerIPIdentity, cfg.MaxKeys),
		mailIP:     newKeyedLimiter(cfg.MailPerIP, cfg.MaxKeys),
		mailAddr:   newKeyedLimiter(cfg.MailPerIPAddress, cfg.MaxKeys),
		otpFails:   newKeyedLimiter(Bucket{Every: otpFailWindow / otpMaxFails, Burst: otpMaxFails}, cfg.MaxKeys),
	}
}

// SetAuthLimits replaces the limits (and forgets every bucket).
func (a *App) SetAuthLimits(l AuthLimits) { a.flows.limits.Store(newAuthLimiters(l)) }

func (a *App) limiters() *authLimiters { return a.flows.limits.Load() }

// AllowAuthAttempt spends one credential check for ip and for (ip,
// identity), or returns a 429 error carrying RetryAfter.
func (a *App) AllowAuthAttempt(ip, identity string) error {
	return a.limiters().allow(ip, identity, false)
}

// AllowMailRequest is AllowAuthAttempt for requests that send mail.
func (a *App) AllowMailRequest(ip, address string) error {
	return a.limiters().allow(ip, address, true)
}

func (l *authLimiters) allow(ip, identity string, mail bool) error {
	if l.cfg.Disabled {
		return nil
	}
	byIP, byPair := l.ip, l.ipIdentity
	if mail {
		byIP, byPair = l.mailIP, l.mailAddr
	}
	if d, ok := byIP.take(ip); !ok {
		return tooMany(d)
	}
	if d, ok := byPair.take(ip + "\x00" + strings.ToLower(identity)); !ok {
		return tooMany(d)
	}
	return nil
}
