package strata

// Bus carries committed changes from the node that wrote them to everyone
// who reacts to them: realtime hubs, caches, other nodes. On one node it is
// in process (bus/memory); across nodes a message broker (bus/nats).
//
// The bus is a fast path, not the record of truth: the change log
// (Reader.Changes) is. A subscriber that falls behind loses batches rather
// than slowing the writer, is told so through Lost, and catches up by
// reading the change log from the last sequence it handled.
type Bus interface {
	// Publish hands the changes of one committed transaction to the bus.
	// It never blocks on subscribers: writers do not wait for fan-out.
	Publish(changes []Change)
	// Subscribe starts a subscription whose queue holds at most buffer
	// batches (a default when buffer <= 0).
	Subscribe(buffer int) BusSubscription
}

// BusSubscription is one subscriber's view of the bus.
type BusSubscription interface {
	// C delivers published batches. Batches published concurrently may
	// arrive in either order; order by Change.Seq when it matters.
	C() <-chan []Change
	// Lost receives a signal (buffered, at most one pending) after batches
	// were dropped because C was full. The subscriber must then read the
	// change log from the last sequence it handled.
	Lost() <-chan struct{}
	// Close ends the subscription; C is not closed, so receivers select on
	// their own stop signal too.
	Close()
}
