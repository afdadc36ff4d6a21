package strata

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
)

// A consistency token is a position in the primary database's write order:
// on PostgreSQL the primary's WAL LSN after a commit. A read that carries a
// token sees every write at or before it, so a client that sends back the
// token of its last write reads its own writes even when reads are spread
// over replicas. Zero means "no token": any healthy replica will do.
//
// Tokens travel in the context, so the Store interface does not change and
// stores without replicas (SQLite) simply ignore them:
//
//   - WithReadAfter / ReadAfter: the minimum position a read must see.
//   - WithWriteTokens / NoteWrite: a store that has replicas reports the
//     position of each committed write to the request that made it.

// ReadLatest, as a read-after token, sends the read to the primary: for
// reads whose result is kept (cache fills) or must see every node's writes.
const ReadLatest = ^uint64(0)

type readAfterKey struct{}

// WithReadAfter returns ctx carrying a minimum token for reads; it keeps the
// larger of token and any token ctx already carries.
func WithReadAfter(ctx context.Context, token uint64) context.Context {
	if token == 0 || token <= ReadAfter(ctx) {
		return ctx
	}
	return context.WithValue(ctx, readAfterKey{}, token)
}

// ReadAfter returns the minimum token reads under ctx must see (0: none).
func ReadAfter(ctx context.Context) uint64 {
	v, _ := ctx.Value(readAfterKey{}).(uint64)
	return v
}

// WriteTokens collects the tokens of the writes made under one context
// (one request, a batch included) and keeps the latest.
type WriteTokens struct{ max atomic.Uint64 }

// Latest returns the largest token noted (0: no write reported one).
func (w *WriteTokens) Latest() uint64 { return w.max.Load() }

// note raises the latest token to t.
func (w *WriteTokens) note(t uint64) {
	for {
		cur := w.max.Load()
		if t <= cur || w.max.CompareAndSwap(cur, t) {
			return
		}
	}
}

type writeTokensKey struct{}

// WithWriteTokens returns ctx with a fresh collector for write tokens.
func WithWriteTokens(ctx context.Context) (context.Context, *WriteTokens) {
	w := new(WriteTokens)
	return context.WithValue(ctx, writeTokensKey{}, w), w
}

// NoteWrite reports a committed write's token to the collector in ctx, if
// any. Stores call it right after commit, before Write returns.
func NoteWrite(ctx context.Context, token uint64) {
	if w, ok := ctx.Value(writeTokensKey{}).(*WriteTokens); ok && token != 0 {
		w.note(token)
	}
}

// FormatToken writes a token as PostgreSQL prints an LSN ("16/B374D848").
func FormatToken(t uint64) string {
	return strconv.FormatUint(t>>32, 16) + "/" + strconv.FormatUint(t&0xffffffff, 16)
}

// ParseToken reads a token written by FormatToken (upper or lower case).
func ParseToken(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("consistency token %q: want X/Y in hexadecimal", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("consistency token %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("consistency token %q: %w", s, err)
	}
	return h<<32 | l, nil
}
