package api_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/strata-run/strata/api"
	"github.com/strata-run/strata/store/postgres"
)

// testRedis connects to the machine's Redis (a missing Redis fails the
// test) and returns a key prefix of the test's own, whose keys are deleted
// in Cleanup.
func testRedis(t *testing.T) (*redis.Client, string) {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	t.Cleanup(func() { rc.Close() })
	ctx := context.Background()
	if err := rc.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis is required (run `make services`): %v", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "strata-test:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		keys, _ := rc.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			rc.Del(context.Background(), keys...)
		}
	})
	return rc, prefix
}

func TestRedisTokensKeepTheLargest(t *testing.T) {
	rc, prefix := testRedis(t)
	ctx := context.Background()
	rt := api.NewRedisTokens(rc, api.RedisTokensOptions{Prefix: prefix, TTL: time.Minute, Timeout: time.Second})
	if got := rt.GetForTest(ctx, "a"); got != 0 {
		t.Fatalf("empty memory: %x", got)
	}
	// Past 2^53, where Lua's doubles would round: 0x1_0000_0001 > 0x1_0000_0000.
	big := uint64(1)<<60 | 1
	rt.NoteForTest(ctx, big, "a", "b")
	rt.NoteForTest(ctx, big-1, "a")   // older: kept out
	rt.NoteForTest(ctx, 7, "b")       // much older: kept out
	rt.NoteForTest(ctx, big+1, "b")   // newer: kept
	rt.NoteForTest(ctx, 1<<32, "c")   // high half only
	rt.NoteForTest(ctx, 1<<32-1, "c") // low half larger, high half smaller: kept out
	for key, want := range map[string]uint64{"a": big, "b": big + 1, "c": 1 << 32} {
		if got := rt.GetForTest(ctx, key); got != want {
			t.Errorf("%s: %x, want %x", key, got, want)
		}
	}
	if got := rt.GetForTest(ctx, "a", "b", "nope"); got != big+1 {
		t.Errorf("largest of a, b: %x, want %x", got, big+1)
	}
	ttl, err := rc.PTTL(ctx, prefix+"a").Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Errorf("TTL %v (%v), want in (0, 1m]", ttl, err)
	}
	// A value Strata did not write is ignored, never an error.
	rc.Set(ctx, prefix+"junk", "not hex", time.Minute)
	if got := rt.GetForTest(ctx, "junk", "a"); got != big {
		t.Errorf("junk and a: %x, want %x", got, big)
	}
	if rt.Fallbacks() != 0 {
		t.Errorf("%d fallbacks with Redis up", rt.Fallbacks())
	}
}

// deadRedis is a client of a port nothing listens on.
func deadRedis(t *testing.T) *redis.Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	rc := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { rc.Close() })
	return rc
}

func TestRedisTokensDown(t *testing.T) {
	ctx := context.Background()
	rt := api.NewRedisTokens(deadRedis(t), api.RedisTokensOptions{Cooldown: time.Hour})
	rt.NoteForTest(ctx, 5, "a")
	if got := rt.GetForTest(ctx, "a"); got != 0 {
		t.Fatalf("dead Redis: %x", got)
	}
	// The note failed and started the cool-down; the lookup skipped Redis.
	if rt.Fallbacks() != 2 {
		t.Fatalf("%d fallbacks, want 2", rt.Fallbacks())
	}
}

// replay pauses or resumes WAL replay on the cluster's replica.
func (f *replicated) replay(t *testing.T, resume bool) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, f.cl.Replica.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	sql := `SELECT pg_wal_replay_pause()`
	if resume {
		sql = `SELECT pg_wal_replay_resume()`
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

// caughtUp waits until the replica has replayed everything the primary
// has written so far.
func (f *replicated) caughtUp(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	p, err := pgx.Connect(ctx, f.cl.Primary.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	var lsn string
	if err := p.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	r, err := pgx.Connect(ctx, f.cl.Replica.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	for deadline := time.Now().Add(2 * time.Minute); ; {
		var done bool
		if err := r.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&done); err != nil {
			t.Fatal(err)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica has not replayed %s in 2 minutes", lsn)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testSharedRedis: a user writes through node A and at once reads through
// node B without sending the consistency header, from another IP address,
// so only the auth identity links the two. With the replica's replay
// paused, a read that is not steered by the token is stale for sure, and
// node C (same store, no shared memory) shows it is: the test cannot pass
// because the replica happened to be quick.
func testSharedRedis(t *testing.T, f *replicated) {
	rc, prefix := testRedis(t)
	share := func() *api.RedisTokens {
		// One RedisTokens per node, as separate processes would have.
		return api.NewRedisTokens(rc, api.RedisTokensOptions{Prefix: prefix, Timeout: 5 * time.Second})
	}
	a, b, c := f.node(t, share()), f.node(t, share()), f.node(t, nil)
	a.su("PATCH", "/api/settings", map[string]any{"trustedProxy": map[string]any{"headers": []string{"X-Forwarded-For"}}}).status(200)
	a.collection(`{"name":"shared","type":"base","listRule":"","viewRule":"","createRule":"","fields":[{"name":"title","type":"text"}]}`)
	_, writer := a.user("shared-writer@strata.test")
	_, other := a.user("shared-other@strata.test")
	f.caughtUp(t) // every node authenticates both users from the replica
	f.replay(t, false)
	t.Cleanup(func() { f.replay(t, true) })

	from := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }
	for i := range 3 {
		title := "shared-" + string(rune('a'+i))
		list := "/api/collections/shared/records?filter=" + q(`title="`+title+`"`)
		res := a.doWith("POST", "/api/collections/shared/records", writer, map[string]any{"title": title}, from("10.0.0.1")).status(200)
		if res.hdr.Get(api.ConsistencyHeader) == "" {
			t.Fatal("write response has no consistency token")
		}
		before := f.st.ReadStats()
		// Without the shared memory the read is stale: the replica
		// serves it and has not replayed the write.
		c.doWith("GET", list, writer, nil, from("10.0.0.2")).status(200).expect("totalItems", 0.0)
		// Another user on node B has no token: the replica serves it, stale.
		b.doWith("GET", list, other, nil, from("10.0.0.4")).status(200).expect("totalItems", 0.0)
		afterStale := f.st.ReadStats()
		// The writer on node B reads the write, with no header sent.
		b.doWith("GET", list, writer, nil, from("10.0.0.3")).status(200).expect("totalItems", 1.0)
		after := f.st.ReadStats()
		if replicaReads(afterStale)-replicaReads(before) < 2 {
			t.Fatalf("the stale reads did not go to the replica: %+v then %+v", before, afterStale)
		}
		if after.Primary == afterStale.Primary {
			t.Fatalf("the writer's read on node B did not go to the primary: %+v then %+v", afterStale, after)
		}
	}
}

func replicaReads(s postgres.ReadStats) int64 {
	var n int64
	for _, r := range s.Replicas {
		n += r.Reads
	}
	return n
}

// testRedisDown: with Redis unreachable every request still succeeds and
// each node still reads its own callers' writes.
func testRedisDown(t *testing.T, f *replicated) {
	f.caughtUp(t)
	dead := api.NewRedisTokens(deadRedis(t), api.RedisTokensOptions{})
	a, b := f.node(t, dead), f.node(t, dead)
	a.collection(`{"name":"downnotes","type":"base","listRule":"","viewRule":"","createRule":"","fields":[{"name":"title","type":"text"}]}`)
	_, user := a.user("down@strata.test")
	f.caughtUp(t)
	for i := range 3 {
		title := "down-" + string(rune('a'+i))
		a.do("POST", "/api/collections/downnotes/records", user, map[string]any{"title": title}).status(200)
		list := "/api/collections/downnotes/records?filter=" + q(`title="`+title+`"`)
		a.do("GET", list, user, nil).status(200).expect("totalItems", 1.0)
		b.do("GET", list, user, nil).status(200)
	}
	if dead.Fallbacks() == 0 {
		t.Fatal("no Redis fallback counted")
	}
	metrics := a.do("GET", "/metrics", a.suToken, nil).status(200)
	if !strings.Contains(string(metrics.body), "strata_consistency_redis_fallbacks_total") {
		t.Fatal("/metrics has no strata_consistency_redis_fallbacks_total")
	}
}

// BenchmarkRedisTokens is the cost a shared memory adds to a request: one
// lookup (reads and writes) plus one note (writes), two keys each.
func BenchmarkRedisTokens(b *testing.B) {
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rc.Close()
	ctx := context.Background()
	if err := rc.Ping(ctx).Err(); err != nil {
		b.Fatalf("Redis is required (run `make services`): %v", err)
	}
	prefix := "strata-bench:" + strconv.Itoa(os.Getpid()) + ":"
	defer func() {
		keys, _ := rc.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			rc.Del(context.Background(), keys...)
		}
	}()
	rt := api.NewRedisTokens(rc, api.RedisTokensOptions{Prefix: prefix, Timeout: time.Second})
	b.Run("get", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			rt.GetForTest(ctx, "ip:10.0.0.1", "auth:users/u"+strconv.Itoa(i%1000))
		}
	})
	b.Run("note", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			rt.NoteForTest(ctx, uint64(i+1), "ip:10.0.0.1", "auth:users/u"+strconv.Itoa(i%1000))
		}
	})
	if rt.Fallbacks() != 0 {
		b.Fatalf("%d fallbacks", rt.Fallbacks())
	}
}
