package impair

import (
	"math/bits"
	"runtime"
	"sync/atomic"
	"time"
)

// arrival is one received packet on its way from the receiver to the releaser.
type arrival struct {
	id   uint32
	drop bool
	held bool // held by a shut gate (gate.go): due is its arrival time, and it waits for the gate to open
	due  int64
}

// ring hands arrivals from the receiver (the only producer) to the releaser (the only consumer) without
// a lock, so the real-time releaser never waits on a receiver that the machine has descheduled (a mutex
// between them stalled releases by tens of milliseconds on a busy machine). Every arrival in the ring is
// also a packet in the kernel's queue awaiting its verdict, and the kernel holds at most MaxQueueLen of
// those (beyond it, fail-open), so a ring of at least that size cannot fill; should it, the receiver waits.
type ring struct {
	buf  []arrival
	mask uint64
	head atomic.Uint64 // next slot to read (consumer)
	tail atomic.Uint64 // next slot to write (producer)
}

func newRing(minSize uint32) *ring {
	n := uint64(1) << bits.Len32(max(minSize, 1024)-1)
	return &ring{buf: make([]arrival, n), mask: n - 1}
}

// put appends a (producer only).
func (r *ring) put(a arrival) {
	t := r.tail.Load()
	for t-r.head.Load() == uint64(len(r.buf)) {
		runtime.Gosched()
		time.Sleep(50 * time.Microsecond)
	}
	r.buf[t&r.mask] = a
	r.tail.Store(t + 1)
}

// drain passes every arrival in the ring to fn, oldest first (consumer only), and returns how many.
func (r *ring) drain(fn func(arrival)) int {
	h, t := r.head.Load(), r.tail.Load()
	for i := h; i < t; i++ {
		fn(r.buf[i&r.mask])
	}
	r.head.Store(t)
	return int(t - h)
}

func (r *ring) empty() bool { return r.head.Load() == r.tail.Load() }
