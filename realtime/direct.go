package realtime

import "slices"

// DirectResult says what became of a message sent to one client.
type DirectResult int

const (
	// Delivered: the message is queued to the client's stream.
	Delivered DirectResult = iota
	// NoSuchClient: no client with that id is connected to this node, or
	// it is not subscribed to the topic.
	NoSuchClient
	// OtherNode: the id was issued by another node (its prefix names that
	// node), so the client's stream is not here.
	OtherNode
)

// SendDirect queues the event topic with data (a JSON document) to the one
// client clientID, if it is connected here and subscribed to topic
// exactly. With once, the subscription is dropped as the event is queued:
// the @oauth2 topic carries one answer per sign-in, as in PocketBase.
//
// TODO(multi-node realtime): a client of another node gets OtherNode; the
// message should travel over the bus to the owner, as subscribe requests
// are meant to (ARCHITECTURE.md §3). Until then the caller treats it as a
// failure.
func (h *Hub) SendDirect(clientID, topic, data string, once bool) DirectResult {
	if owner := OwnerNode(clientID); owner != "" && owner != h.cfg.NodeID {
		return OtherNode
	}
	h.mu.Lock()
	c := h.clients[clientID]
	if c == nil {
		h.mu.Unlock()
		return NoSuchClient
	}
	i := slices.IndexFunc(c.subs, func(s *subscription) bool { return s.name == topic })
	if i < 0 {
		h.mu.Unlock()
		return NoSuchClient
	}
	if once {
		h.unindex(c)
		c.subs = slices.Delete(slices.Clone(c.subs), i, i+1)
		h.reindex(c)
	}
	h.mu.Unlock()
	// Outside the hub lock: send may evict c, which takes it.
	c.send(event{name: topic, data: data})
	return Delivered
}

// reindex adds c's subscriptions to the topic index; the caller holds h.mu.
func (h *Hub) reindex(c *Client) {
	for _, s := range c.subs {
		set := h.index[s.collection]
		if set == nil {
			set = map[*Client]struct{}{}
			h.index[s.collection] = set
		}
		set[c] = struct{}{}
	}
}
