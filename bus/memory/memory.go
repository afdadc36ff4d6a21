// Package memory is the in-process strata.Bus of a single node: Publish
// hands each committed batch to every subscriber's bounded queue without
// ever blocking the writer.
package memory

import (
	"sync"

	"github.com/strata-run/strata"
)

// DefaultBuffer is the queue length, in batches, of a subscription that
// asked for none.
const DefaultBuffer = 4096

// Bus is an in-process strata.Bus. The zero value is not usable; call New.
type Bus struct {
	mu   sync.RWMutex
	subs map[*subscription]struct{}
}

// New returns an empty bus.
func New() *Bus { return &Bus{subs: map[*subscription]struct{}{}} }

var _ strata.Bus = (*Bus)(nil)

// Publish implements strata.Bus. A subscriber whose queue is full loses
// the batch and gets a Lost signal; it recovers from the change log.
func (b *Bus) Publish(changes []strata.Change) {
	if len(changes) == 0 {
		return
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	for s := range b.subs {
		select {
		case s.c <- changes:
		default:
			select {
			case s.lost <- struct{}{}:
			default:
			}
		}
	}
}

// Subscribe implements strata.Bus.
func (b *Bus) Subscribe(buffer int) strata.BusSubscription {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	s := &subscription{bus: b, c: make(chan []strata.Change, buffer), lost: make(chan struct{}, 1)}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

type subscription struct {
	bus  *Bus
	c    chan []strata.Change
	lost chan struct{}
}

func (s *subscription) C() <-chan []strata.Change { return s.c }
func (s *subscription) Lost() <-chan struct{}     { return s.lost }

func (s *subscription) Close() {
	s.bus.mu.Lock()
	delete(s.bus.subs, s)
	s.bus.mu.Unlock()
}
