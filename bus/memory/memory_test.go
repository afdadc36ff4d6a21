package memory

import (
	"sync"
	"testing"

	"github.com/strata-run/strata"
)

func TestPublishDelivers(t *testing.T) {
	b := New()
	s := b.Subscribe(4)
	defer s.Close()
	b.Publish([]strata.Change{{Seq: 1}})
	b.Publish(nil) // nothing to say: not delivered
	got := <-s.C()
	if len(got) != 1 || got[0].Seq != 1 {
		t.Fatalf("got %+v", got)
	}
	select {
	case extra := <-s.C():
		t.Fatalf("unexpected batch %+v", extra)
	default:
	}
}

func TestOverflowNeverBlocksAndSignalsLost(t *testing.T) {
	b := New()
	s := b.Subscribe(2)
	defer s.Close()
	for i := range 10 {
		b.Publish([]strata.Change{{Seq: int64(i + 1)}})
	}
	if n := len(s.C()); n != 2 {
		t.Fatalf("queued %d batches, want 2", n)
	}
	select {
	case <-s.Lost():
	default:
		t.Fatal("no Lost signal after overflow")
	}
}

func TestConcurrentPublishSubscribeClose(t *testing.T) {
	b := New()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range 100 {
				b.Publish([]strata.Change{{Seq: int64(i*100 + j)}})
			}
		}()
		go func() {
			defer wg.Done()
			s := b.Subscribe(16)
			for range 10 {
				select {
				case <-s.C():
				default:
				}
			}
			s.Close()
		}()
	}
	wg.Wait()
}
