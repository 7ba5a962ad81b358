package impair

// pending holds the packets the delay program has received and not yet released, and turns "these are
// due now" into the fewest verdict messages. The kernel's batch verdict accepts every queued packet with an
// id up to a given one, so a batch can only cover a prefix (in id order) of the held packets all of which
// are due; a due packet behind a packet still held (jitter without keep_order) gets its own verdict, and so
// does every drop, sent before any batch that spans it.
type pending struct {
	ring    []entry // held packets in arrival (= id) order; ring[0] has sequence number base
	base    uint64
	head    int // ring[:head] are released and sent
	nextSeq uint64
	heap    dueHeap
	popped  []uint64 // scratch: sequence numbers released by the current collect
	held    int      // packets held by a shut gate (due heldDue in the heap)
}

// heldDue is the heap's due time of a packet a shut gate holds: later than any real due time, so the
// gate's packets wait behind everything else until releaseHeld gives them a real one.
const heldDue = noDue - 1

type entry struct {
	id       uint32
	due      int64
	drop     bool
	released bool // due and handed to the caller
	sent     bool // its verdict has been sent individually
}

// verdicts is the outcome of one collect: send single (in order) and then, if hasBatch, an accept batch
// up to batch. accepted holds the due times of the packets accepted, for lateness statistics.
type verdicts struct {
	single   []singleVerdict
	batch    uint32
	hasBatch bool
	accepted []int64
}

type singleVerdict struct {
	id   uint32
	drop bool
}

func (v *verdicts) reset() {
	v.single, v.accepted, v.hasBatch, v.batch = v.single[:0], v.accepted[:0], false, 0
}

func (p *pending) len() int { return len(p.ring) - p.head }

func (p *pending) push(id uint32, due int64, drop bool) {
	p.ring = append(p.ring, entry{id: id, due: due, drop: drop})
	p.heap.push(heapItem{due: due, seq: p.nextSeq})
	p.nextSeq++
}

// pushHeld holds a packet that arrived at arrived until releaseHeld. Its entry keeps the arrival time as
// its due time, so that its lateness when released is the time it was held.
func (p *pending) pushHeld(id uint32, arrived int64) {
	p.ring = append(p.ring, entry{id: id, due: arrived})
	p.heap.push(heapItem{due: heldDue, seq: p.nextSeq})
	p.nextSeq++
	p.held++
}

// releaseHeld makes every held packet due at now (they leave in arrival order: equal due times leave by
// sequence).
func (p *pending) releaseHeld(now int64) {
	for i := range p.heap {
		if p.heap[i].due == heldDue {
			p.heap[i].due = now
		}
	}
	p.heap.init()
	p.held = 0
}

// nextDue is the earliest due time held.
func (p *pending) nextDue() (int64, bool) {
	if len(p.heap) == 0 {
		return 0, false
	}
	return p.heap[0].due, true
}

// collect releases every packet due at or before now and fills v with the verdicts to send.
func (p *pending) collect(now int64, v *verdicts) {
	v.reset()
	p.popped = p.popped[:0]
	for len(p.heap) > 0 && p.heap[0].due <= now {
		it := p.heap.pop()
		e := &p.ring[int(it.seq-p.base)]
		e.released = true
		p.popped = append(p.popped, it.seq)
		if !e.drop {
			v.accepted = append(v.accepted, e.due)
		}
	}
	// Advance the prefix of released packets; every not-yet-sent accept in it is covered by the batch,
	// every drop in it is sent first.
	for p.head < len(p.ring) && p.ring[p.head].released {
		e := &p.ring[p.head]
		if !e.sent {
			if e.drop {
				v.single = append(v.single, singleVerdict{id: e.id, drop: true})
			} else {
				v.batch, v.hasBatch = e.id, true
			}
			e.sent = true
		}
		p.head++
	}
	// Packets released now but behind a held one need their own verdicts.
	for _, seq := range p.popped {
		i := int(seq - p.base)
		if i < p.head {
			continue
		}
		if e := &p.ring[i]; !e.sent {
			v.single = append(v.single, singleVerdict{id: e.id, drop: e.drop})
			e.sent = true
		}
	}
	p.compact()
}

// compact drops the sent prefix once it is large, so the ring does not grow without bound.
func (p *pending) compact() {
	if p.head == len(p.ring) {
		p.base += uint64(p.head)
		p.ring, p.head = p.ring[:0], 0
		return
	}
	if p.head >= 1024 && p.head*2 >= len(p.ring) {
		n := copy(p.ring, p.ring[p.head:])
		p.base += uint64(p.head)
		p.ring, p.head = p.ring[:n], 0
	}
}

type heapItem struct {
	due int64
	seq uint64
}

// dueHeap is a binary min-heap by (due, seq): equal due times leave in arrival order.
type dueHeap []heapItem

func (h dueHeap) less(i, j int) bool {
	return h[i].due < h[j].due || (h[i].due == h[j].due && h[i].seq < h[j].seq)
}

func (h *dueHeap) push(it heapItem) {
	*h = append(*h, it)
	s := *h
	for i := len(s) - 1; i > 0; {
		parent := (i - 1) / 2
		if !s.less(i, parent) {
			break
		}
		s[i], s[parent] = s[parent], s[i]
		i = parent
	}
}

// init restores the heap order after due times changed.
func (h dueHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h dueHeap) down(i int) {
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h) && h.less(l, m) {
			m = l
		}
		if r < len(h) && h.less(r, m) {
			m = r
		}
		if m == i {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func (h *dueHeap) pop() heapItem {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	s.down(0)
	*h = s
	return top
}
