package impair

import (
	"slices"
	"testing"
)

// TestPendingHeld: packets a shut gate holds stay held whatever the time, behind packets with real due
// times; releaseHeld lets them all go at once, in arrival order, with their arrival times as due times
// (so their lateness is the time they were held).
func TestPendingHeld(t *testing.T) {
	var p pending
	var v verdicts
	p.push(1, 10, false)
	p.pushHeld(2, 20)
	p.pushHeld(3, 30)
	p.push(4, 40, false) // passed through after the gate opened, before the releaser saw it open
	p.pushHeld(5, 50)
	// id 1 goes; id 4 is due too, but behind held packets: it goes alone.
	p.collect(1_000_000, &v)
	if !slices.Equal(v.single, []singleVerdict{{id: 4}}) || !v.hasBatch || v.batch != 1 ||
		!slices.Equal(v.accepted, []int64{10, 40}) {
		t.Fatalf("before release: %+v", v)
	}
	p.collect(1_000_000, &v)
	if len(v.single) != 0 || v.hasBatch || p.held != 3 || p.len() != 4 {
		t.Fatalf("%+v: held %d, pending %d; want nothing released, 3 held, 4 in the ring", v, p.held, p.len())
	}
	if due, _ := p.nextDue(); due != heldDue {
		t.Fatalf("next due %d, want heldDue", due)
	}
	p.releaseHeld(2_000_000)
	if p.held != 0 {
		t.Fatalf("held %d after release", p.held)
	}
	p.collect(2_000_000, &v)
	if v.batch != 5 || !v.hasBatch || len(v.single) != 0 {
		t.Fatalf("after release: %+v", v)
	}
	if !slices.Equal(v.accepted, []int64{20, 30, 50}) {
		t.Errorf("accepted due times %v, want the arrival times 20 30 50 in order", v.accepted)
	}
	if p.len() != 0 {
		t.Errorf("%d still pending", p.len())
	}
}
