package sortedset

import (
	"container/list"
	"strings"
	"sync"
)

// DefaultMaxSegment is the segment size when Options.MaxSegment is 0: a segment of 256
// keys of 512 bytes stays well under Vault's smallest storage entry limit (512 KiB on
// Consul), and 256 UUID keys are about 10 KiB of JSON per Put.
const DefaultMaxSegment = 256

// DefaultCacheBytes is the cache bound when Options.CacheBytes is 0: enough for the heads
// and segments of a few indexes of 100k UUID keys each.
const DefaultCacheBytes = 32 << 20

// Options configures a Manager. The zero value gives the defaults.
type Options struct {
	// MaxSegment is the most keys a segment holds before it is split (0: DefaultMaxSegment).
	MaxSegment int
	// CacheBytes bounds the decoded heads and segments kept in memory, counted roughly as
	// the bytes of their keys (0: DefaultCacheBytes, negative: no cache).
	CacheBytes int64
}

// Manager holds the Sets of one storage and the cache they share. Use one Manager per
// logical.Storage: two Managers writing the same prefix do not see each other's writes.
type Manager struct {
	maxSegment int
	minFill    int // a segment with fewer keys (and a neighbour) is merged or rebalanced
	mergeMax   int // merge into one segment when both hold at most this many keys together
	cacheBytes int64

	setsMu sync.Mutex
	sets   map[string]*Set

	// cacheMu guards everything below and every Set's cached map.
	cacheMu sync.Mutex
	lru     *list.List // front: most recently used *cacheEntry
	entries map[string]*list.Element
	used    int64
	// epoch changes on every Invalidate and Reset, so that a value read from storage
	// before an invalidation is not cached after it.
	epoch uint64
}

type cacheEntry struct {
	key   string
	set   *Set
	value any // *head or *segment; never modified once cached
	size  int64
}

// NewManager returns a Manager with an empty cache.
func NewManager(opts Options) *Manager {
	m := &Manager{
		maxSegment: opts.MaxSegment,
		cacheBytes: opts.CacheBytes,
		sets:       map[string]*Set{},
		lru:        list.New(),
		entries:    map[string]*list.Element{},
	}
	if m.maxSegment <= 0 {
		m.maxSegment = DefaultMaxSegment
	}
	if m.cacheBytes == 0 {
		m.cacheBytes = DefaultCacheBytes
	}
	// A quarter full at least, so a page of n keys spans at most n/(MaxSegment/4)+2
	// segments; merging only up to three quarters leaves room before the next split.
	m.minFill = max(1, m.maxSegment/4)
	m.mergeMax = max(m.minFill, 3*m.maxSegment/4)
	return m
}

// Set returns the set stored under prefix; the same prefix always gives the same *Set, so
// that all writes to it go through one lock. It panics on an empty prefix or one ending in
// "/", which are programming errors.
func (m *Manager) Set(prefix string) *Set {
	if prefix == "" || strings.HasSuffix(prefix, "/") {
		panic("sortedset: prefix must be non-empty and not end in /: " + prefix)
	}
	m.setsMu.Lock()
	defer m.setsMu.Unlock()
	if s, ok := m.sets[prefix]; ok {
		return s
	}
	s := &Set{m: m, prefix: prefix, headKey: prefix + "/h", cached: map[string]*list.Element{}}
	m.sets[prefix] = s
	return s
}

// Invalidate drops what the cache holds for storageKey (as the Sets' storage names it),
// for Vault's Invalidate callback when another node wrote the key. A head also drops its
// set's segments, and makes running scans read the head again.
func (m *Manager) Invalidate(storageKey string) {
	var set *Set
	if prefix, ok := strings.CutSuffix(storageKey, "/h"); ok {
		m.setsMu.Lock()
		set = m.sets[prefix]
		m.setsMu.Unlock()
	}
	m.cacheMu.Lock()
	m.epoch++
	if el, ok := m.entries[storageKey]; ok {
		m.removeLocked(el)
	}
	if set != nil {
		m.dropSetLocked(set)
	}
	m.cacheMu.Unlock()
	if set != nil {
		set.headVersion.Add(1)
	}
}

// Reset drops every cached entry.
func (m *Manager) Reset() {
	m.cacheMu.Lock()
	m.epoch++
	m.lru.Init()
	m.entries = map[string]*list.Element{}
	m.used = 0
	m.cacheMu.Unlock()

	m.setsMu.Lock()
	defer m.setsMu.Unlock()
	for _, s := range m.sets {
		m.cacheMu.Lock()
		clear(s.cached)
		m.cacheMu.Unlock()
		s.headVersion.Add(1)
	}
}

func (m *Manager) currentEpoch() uint64 {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	return m.epoch
}

func (m *Manager) lookup(key string) (any, bool) {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	el, ok := m.entries[key]
	if !ok {
		return nil, false
	}
	m.lru.MoveToFront(el)
	return el.Value.(*cacheEntry).value, true
}

// store caches value for key. A value read from storage passes the epoch of before the
// read, and is dropped if an invalidation came in since; a value this process just wrote
// passes fromWrite, since it is what storage now holds.
func (m *Manager) store(s *Set, key string, value any, size int64, epoch uint64, fromWrite bool) {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	if el, ok := m.entries[key]; ok {
		m.removeLocked(el)
	}
	if m.cacheBytes < 0 || size > m.cacheBytes || (!fromWrite && epoch != m.epoch) {
		return
	}
	el := m.lru.PushFront(&cacheEntry{key: key, set: s, value: value, size: size})
	m.entries[key] = el
	s.cached[key] = el
	m.used += size
	for m.used > m.cacheBytes {
		m.removeLocked(m.lru.Back())
	}
}

func (m *Manager) drop(key string) {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	if el, ok := m.entries[key]; ok {
		m.removeLocked(el)
	}
}

func (m *Manager) dropSet(s *Set) {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	m.dropSetLocked(s)
}

func (m *Manager) dropSetLocked(s *Set) {
	for _, el := range s.cached {
		m.removeLocked(el)
	}
}

func (m *Manager) removeLocked(el *list.Element) {
	e := el.Value.(*cacheEntry)
	m.lru.Remove(el)
	delete(m.entries, e.key)
	delete(e.set.cached, e.key)
	m.used -= e.size
}
