package impair

import (
	"math/rand/v2"
	"slices"
	"testing"

	mnl "github.com/mdlayher/netlink"
)

// kernelQueue models nfnetlink_queue's verdict handling: a single verdict removes one id, a batch
// verdict removes every queued id up to the given one.
type kernelQueue struct {
	t       *testing.T
	held    map[uint32]bool
	due     map[uint32]int64
	drop    map[uint32]bool
	now     int64
	order   []uint32 // ids in the order they were let through
	dropped int
}

func (k *kernelQueue) apply(v *verdicts) {
	for _, s := range v.single {
		k.take(s.id, s.drop)
	}
	if v.hasBatch {
		ids := make([]uint32, 0, len(k.held))
		for id := range k.held {
			if id <= v.batch {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		for _, id := range ids {
			k.take(id, false)
		}
	}
}

func (k *kernelQueue) take(id uint32, drop bool) {
	k.t.Helper()
	if !k.held[id] {
		k.t.Fatalf("verdict for id %d, which is not queued", id)
	}
	if k.due[id] > k.now+releaseEarly {
		k.t.Fatalf("id %d released at %d before its due time %d", id, k.now, k.due[id])
	}
	if drop != k.drop[id] {
		k.t.Fatalf("id %d: drop=%v, want %v", id, drop, k.drop[id])
	}
	delete(k.held, id)
	if drop {
		k.dropped++
	} else {
		k.order = append(k.order, id)
	}
}

func TestPendingInOrderIsOneBatch(t *testing.T) {
	var p pending
	for id := uint32(1); id <= 5; id++ {
		p.push(id, int64(id)*10, false)
	}
	var v verdicts
	p.collect(35, &v)
	if len(v.single) != 0 || !v.hasBatch || v.batch != 3 || len(v.accepted) != 3 {
		t.Errorf("got singles %v batch %v/%d accepted %v, want one batch up to 3", v.single, v.hasBatch, v.batch,
			v.accepted)
	}
	p.collect(100, &v)
	if !v.hasBatch || v.batch != 5 || p.len() != 0 {
		t.Errorf("second collect: batch %d, %d left", v.batch, p.len())
	}
}

func TestPendingOutOfOrderAndDrops(t *testing.T) {
	var p pending
	p.push(1, 50, false) // held longest
	p.push(2, 10, false) // due first, behind 1: own verdict
	p.push(3, 5, true)   // dropped
	p.push(4, 60, false)
	var v verdicts
	p.collect(20, &v)
	want := []singleVerdict{{id: 3, drop: true}, {id: 2}}
	if v.hasBatch || !sameVerdicts(v.single, want) {
		t.Errorf("got singles %v batch %v, want %v and no batch", v.single, v.hasBatch, want)
	}
	p.collect(55, &v)
	if len(v.single) != 0 || !v.hasBatch || v.batch != 1 {
		t.Errorf("got singles %v batch %d, want batch up to 1 only", v.single, v.batch)
	}
	p.collect(60, &v)
	if !v.hasBatch || v.batch != 4 || p.len() != 0 {
		t.Errorf("got batch %d, %d left", v.batch, p.len())
	}
}

func sameVerdicts(a, b []singleVerdict) bool {
	slices.SortFunc(a, func(x, y singleVerdict) int { return int(x.id) - int(y.id) })
	slices.SortFunc(b, func(x, y singleVerdict) int { return int(x.id) - int(y.id) })
	return slices.Equal(a, b)
}

// Random arrivals, delays and drops: every packet gets exactly one verdict, never before its due time,
// with the right action; with monotone due times (keep_order) the order is kept.
func TestPendingRandomised(t *testing.T) {
	for _, keepOrder := range []bool{false, true} {
		r := rand.New(rand.NewPCG(5, 6))
		var p pending
		k := &kernelQueue{t: t, held: map[uint32]bool{}, due: map[uint32]int64{}, drop: map[uint32]bool{}}
		var v verdicts
		var id uint32
		var last int64
		for step := 0; step < 20_000; step++ {
			k.now += int64(r.IntN(100))
			for range r.IntN(4) {
				id++
				due := k.now + int64(r.IntN(5000))
				if keepOrder {
					due = max(due, last)
					last = due
				}
				drop := r.IntN(20) == 0
				k.held[id], k.due[id], k.drop[id] = true, due, drop
				p.push(id, due, drop)
			}
			p.collect(k.now+releaseEarly, &v)
			k.apply(&v)
		}
		k.now += 1 << 40
		p.collect(k.now, &v)
		k.apply(&v)
		if len(k.held) != 0 || p.len() != 0 || len(k.order)+k.dropped != int(id) {
			t.Fatalf("keep_order=%v: %d still queued, %d pending, %d+%d of %d verdicted", keepOrder, len(k.held),
				p.len(), len(k.order), k.dropped, id)
		}
		if keepOrder && !slices.IsSorted(k.order) {
			t.Errorf("keep_order: packets left out of order")
		}
	}
}

// The releaser's raw verdict messages are byte for byte what go-nfqueue's SetVerdict and
// SetVerdictBatch send (which marshal through mdlayher/netlink), with the family left unspecified.
func TestAppendVerdictMatchesGoNfqueue(t *testing.T) {
	for _, tc := range []struct {
		id          uint32
		drop, batch bool
		typ         uint16
		verdict     byte
	}{{7, false, false, 3<<8 | 1, 1}, {8, true, false, 3<<8 | 1, 0}, {9, false, true, 3<<8 | 3, 1}} {
		attrs, err := mnl.MarshalAttributes([]mnl.Attribute{{Type: 2,
			Data: []byte{0, 0, 0, tc.verdict, 0, 0, 0, byte(tc.id)}}})
		if err != nil {
			t.Fatal(err)
		}
		m := mnl.Message{Header: mnl.Header{Length: verdictMsgLen, Type: mnl.HeaderType(tc.typ), Flags: mnl.Request},
			Data: append([]byte{0, 0, 0, 5}, attrs...)}
		want, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if got := appendVerdict(nil, 5, tc.id, tc.drop, tc.batch); !slices.Equal(got, want) {
			t.Errorf("verdict %+v:\ngot  %x\nwant %x", tc, got, want)
		}
	}
}
