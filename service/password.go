package service

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/strata-run/strata"
)

// Argon2id parameters: one of OWASP's equivalent minimum configurations
// (m=7 MiB, t=5, p=1; the cheat sheet lists it beside m=19 MiB, t=2). The
// same CPU cost per hash with a third of the memory keeps a sign-in flood
// from inflating the heap: each concurrent hash holds m. Hashes record their
// own parameters, so older ones keep verifying if these change.
const (
	argonTime    = 5
	argonMemory  = 7 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// Hasher hashes and verifies passwords. A semaphore bounds how many hashes
// run at once and a bounded wait bounds how many queue: each hash holds
// 7 MiB and ~30 ms of a core, so a flood of sign-ins (from one address or
// many) must be turned away cheaply instead of starving other requests.
type Hasher struct {
	sem     chan struct{}
	waiting atomic.Int32
	maxWait int32
	timeout time.Duration
}

// NewHasher returns a Hasher running at most n hashes concurrently
// (0 = half the CPUs, at least one: the other half keeps serving reads
// during a sign-in flood).
func NewHasher(n int) *Hasher {
	if n <= 0 {
		n = max(1, runtime.GOMAXPROCS(0)/2)
	}
	return &Hasher{sem: make(chan struct{}, n), maxWait: int32(32 * n), timeout: 2 * time.Second}
}

// errHashBusy is the answer when the hashing queue is full or too slow.
var errHashBusy = &strata.Error{Code: strata.EUnavailable, Message: "Too many concurrent sign-ins, try again later."}

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	default:
	}
	if h.waiting.Add(1) > h.maxWait {
		h.waiting.Add(-1)
		return errHashBusy
	}
	defer h.waiting.Add(-1)
	t := time.NewTimer(h.timeout)
	defer t.Stop()
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-t.C:
		return errHashBusy
	case <-ctx.Done():
		return &strata.Error{Code: strata.EUnavailable, Message: "Too many concurrent sign-ins, try again later.", Err: ctx.Err()}
	}
}

func (h *Hasher) release() { <-h.sem }

// Hash returns an encoded Argon2id hash in the PHC string format.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	h.release()
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// Verify reports whether password matches hash. It accepts Argon2id hashes
// and the bcrypt hashes PocketBase stores, so an imported user base keeps
// working; needsRehash tells the caller to upgrade a bcrypt hash.
func (h *Hasher) Verify(ctx context.Context, hash, password string) (ok, needsRehash bool, err error) {
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	defer h.release()
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		return verifyArgon2id(hash, password), false, nil
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		ok := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
		return ok, ok, nil
	}
	// Unknown or empty hash: do comparable work so timing does not reveal it.
	argon2.IDKey([]byte(password), []byte("strata-dummy-salt"), argonTime, argonMemory, argonThreads, argonKeyLen)
	return false, false, nil
}

// Dummy burns the same time as a real verification; used for unknown
// identities so that sign-in timing does not reveal whether an account exists.
func (h *Hasher) Dummy(ctx context.Context, password string) {
	if h.acquire(ctx) != nil {
		return
	}
	argon2.IDKey([]byte(password), []byte("strata-dummy-salt"), argonTime, argonMemory, argonThreads, argonKeyLen)
	h.release()
}

func verifyArgon2id(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 {
		return false
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	// Refuse absurd parameters from a tampered hash instead of allocating them.
	if m == 0 || m > 1<<20 || t == 0 || t > 16 || p == 0 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 128 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}
