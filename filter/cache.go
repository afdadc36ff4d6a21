package filter

import (
	"container/list"
	"sync"
)

// CacheSize is the number of parsed filters ParseCached keeps.
const CacheSize = 2048

type cacheEntry struct {
	src  string
	expr Expr
}

var cache = struct {
	sync.Mutex
	items map[string]*list.Element
	order *list.List // front = most recently used
}{items: map[string]*list.Element{}, order: list.New()}

// ParseCached is Parse with a bounded LRU cache of successful parses, for
// rules that are re-parsed on every request. The returned Expr is shared
// and must not be modified.
func ParseCached(src string) (Expr, error) {
	cache.Lock()
	if el, ok := cache.items[src]; ok {
		cache.order.MoveToFront(el)
		e := el.Value.(*cacheEntry).expr
		cache.Unlock()
		return e, nil
	}
	cache.Unlock()
	e, err := Parse(src)
	if err != nil {
		return nil, err
	}
	cache.Lock()
	defer cache.Unlock()
	if _, ok := cache.items[src]; !ok {
		cache.items[src] = cache.order.PushFront(&cacheEntry{src, e})
		for cache.order.Len() > CacheSize {
			old := cache.order.Back()
			cache.order.Remove(old)
			delete(cache.items, old.Value.(*cacheEntry).src)
		}
	}
	return e, nil
}
