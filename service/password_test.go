package service

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHasherTurnsAwayAFloodCheaply(t *testing.T) {
	h := NewHasher(1)
	h.maxWait, h.timeout = 2, 200*time.Millisecond
	hash, err := h.Hash(context.Background(), "pw-123456")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	var busy atomic.Int32
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := h.Verify(context.Background(), hash, "wrong"); err != nil {
				busy.Add(1)
			}
		}()
	}
	wg.Wait()
	// One runs, two may wait: most of the 20 are refused at once.
	if busy.Load() < 10 {
		t.Fatalf("only %d of 20 concurrent verifications were turned away", busy.Load())
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("the flood took %v", el)
	}
}
