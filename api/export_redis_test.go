package api

import "context"

// Test hooks into RedisTokens for the api_test package.

// GetForTest is get.
func (t *RedisTokens) GetForTest(ctx context.Context, keys ...string) uint64 { return t.get(ctx, keys) }

// NoteForTest is note.
func (t *RedisTokens) NoteForTest(ctx context.Context, token uint64, keys ...string) {
	t.note(ctx, keys, token)
}
