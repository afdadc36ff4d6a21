package guard

import (
	"context"
	"fmt"
	"hash/maphash"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestGCRA(t *testing.T) {
	now := time.Unix(1000, 0)
	var tat time.Time
	// A burst of max passes, the next is refused with an exact wait.
	for i := range 5 {
		d, next := gcra(now, tat, 5, 10*time.Second)
		if !d.Allowed || d.Remaining != 4-i {
			t.Fatalf("request %d: %+v", i, d)
		}
		tat = next
	}
	d, _ := gcra(now, tat, 5, 10*time.Second)
	if d.Allowed || d.RetryAfter != 2*time.Second {
		t.Fatalf("over the limit: %+v, want retry after 2s", d)
	}
	// One interval later one more request passes.
	d, _ = gcra(now.Add(2*time.Second), tat, 5, 10*time.Second)
	if !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after one interval: %+v", d)
	}
	// A full window later the whole burst is back.
	d, _ = gcra(now.Add(10*time.Second), tat, 5, 10*time.Second)
	if !d.Allowed || d.Remaining != 4 {
		t.Fatalf("after the window: %+v", d)
	}
}

func TestLocalConcurrentExactBudget(t *testing.T) {
	l := NewLocal()
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if l.Allow(context.Background(), "k", 50, time.Hour).Allowed {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 50 {
		t.Fatalf("allowed %d of 800 with a budget of 50", allowed)
	}
}

func TestLocalForgetsPassedKeys(t *testing.T) {
	l := NewLocal()
	clock := time.Unix(0, 0)
	l.now = func() time.Time { return clock }
	for i := range 1000 {
		l.Allow(context.Background(), fmt.Sprint("old", i), 10, time.Second)
	}
	if l.Len() != 1000 {
		t.Fatalf("tracked %d keys, want 1000", l.Len())
	}
	// Two minutes on, each shard sweeps on its next use: use every shard
	// once and the old keys, whose schedules have passed, must all be gone.
	clock = clock.Add(2 * time.Minute)
	swept := map[uint64]bool{}
	for i := 0; len(swept) < len(l.shards); i++ {
		key := fmt.Sprint("new", i)
		shard := maphash.String(l.seed, key) % uint64(len(l.shards))
		if !swept[shard] {
			swept[shard] = true
			l.Allow(context.Background(), key, 10, time.Second)
		}
	}
	if n := l.Len(); n != len(l.shards) {
		t.Fatalf("%d keys tracked after every shard swept, want only the %d just used", n, len(l.shards))
	}
	for i := range l.shards {
		for k := range l.shards[i].tats {
			if strings.HasPrefix(k, "old") {
				t.Fatalf("key %s survived its sweep", k)
			}
		}
	}
}

func TestMatch(t *testing.T) {
	rules := []Rule{
		{Label: "*:auth", MaxRequests: 2},
		{Label: "posts:create", Audience: "@guest", MaxRequests: 3},
		{Label: "posts:create", MaxRequests: 4},
		{Label: "/api/batch", MaxRequests: 5},
		{Label: "POST /api/", MaxRequests: 6},
		{Label: "/api/", MaxRequests: 7},
		{Label: "/api/collections/", Audience: "@auth", MaxRequests: 8},
	}
	cases := []struct {
		t    Target
		want int
	}{
		{Target{Method: "POST", Path: "/api/collections/posts/records", Collection: "posts", Action: "create"}, 3},
		{Target{Method: "POST", Path: "/api/collections/posts/records", Collection: "posts", Action: "create", Authenticated: true}, 4},
		{Target{Method: "POST", Path: "/api/collections/users/auth-with-password", Collection: "users", Action: "auth"}, 2},
		{Target{Method: "POST", Path: "/api/batch"}, 5},
		{Target{Method: "POST", Path: "/api/collections/x/records", Collection: "x", Action: "create"}, 6},
		{Target{Method: "GET", Path: "/api/collections/x/records", Collection: "x", Action: "list"}, 7},
		{Target{Method: "GET", Path: "/api/collections/x/records", Collection: "x", Action: "list", Authenticated: true}, 8},
		{Target{Method: "GET", Path: "/other"}, 0},
	}
	for _, c := range cases {
		got := Match(rules, c.t)
		n := 0
		if got != nil {
			n = got.MaxRequests
		}
		if n != c.want {
			t.Errorf("%+v: matched %+v, want the rule with max %d", c.t, got, c.want)
		}
	}
}

// redisClient connects to the Redis that CI provides; its absence is a
// failure, not a skip.
func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis at 127.0.0.1:6379 is required (make test starts it): %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisSharedBudget(t *testing.T) {
	c := redisClient(t)
	key := "test:" + t.Name() + time.Now().String()
	// Two "nodes" share one budget through Redis.
	a, b := NewRedis(c, RedisOptions{}), NewRedis(c, RedisOptions{})
	allowed := 0
	for i := range 20 {
		l := a
		if i%2 == 1 {
			l = b
		}
		if d := l.Allow(context.Background(), key, 10, time.Minute); d.Allowed {
			allowed++
		} else if d.RetryAfter <= 0 || d.RetryAfter > 6*time.Second {
			t.Fatalf("refused with RetryAfter %v", d.RetryAfter)
		}
	}
	if allowed != 10 {
		t.Fatalf("allowed %d across two nodes with a shared budget of 10", allowed)
	}
	if a.Fallbacks()+b.Fallbacks() != 0 {
		t.Fatal("fell back to local limits with Redis up")
	}
}

// A caller that went away must not count as Redis being down: that would
// move the node to local limits, which are not shared, for the cooldown.
func TestRedisCallerGoneIsNotRedisDown(t *testing.T) {
	c := redisClient(t)
	key := "test:" + t.Name() + time.Now().String()
	l := NewRedis(c, RedisOptions{Cooldown: time.Minute})
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if !l.Allow(gone, key, 2, time.Minute).Allowed {
		t.Fatal("first check refused")
	}
	// The budget is Redis's: one left, then none.
	if !l.Allow(context.Background(), key, 2, time.Minute).Allowed || l.Allow(context.Background(), key, 2, time.Minute).Allowed {
		t.Fatal("the checks did not share Redis's budget")
	}
	if n := l.Fallbacks(); n != 0 {
		t.Fatalf("%d checks fell back to local limits with Redis up", n)
	}
}

func TestRedisDownFallsBackLocally(t *testing.T) {
	// A port with nothing listening stands for Redis going away.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 20 * time.Millisecond})
	defer c.Close()
	l := NewRedis(c, RedisOptions{Timeout: 30 * time.Millisecond, Cooldown: time.Minute})
	start := time.Now()
	allowed := 0
	for range 20 {
		if l.Allow(context.Background(), "k", 5, time.Minute).Allowed {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("local fallback allowed %d, want the same budget of 5", allowed)
	}
	if l.Fallbacks() != 20 {
		t.Fatalf("fallbacks = %d", l.Fallbacks())
	}
	// Only the first check pays the failed connection; the rest go local.
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("20 checks with Redis down took %v", el)
	}
}
