package loadgen

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faultlab/faultlab/results"
)

// TestPersistent runs 40 queries at 400/s over 2 persistent MySQL sessions: every record is ok, only 2
// connections are made (2 source ports), and Close quits both.
func TestPersistent(t *testing.T) {
	var accepted atomic.Int32
	f := fakeMySQL{quits: make(chan bool, 4)}
	dst := serve(t, func(c *net.TCPConn) { accepted.Add(1); f.serve(c) })
	p, err := NewPersistent(MySQL{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	cfg := Config{Cell: "persistent", Rate: 400, Duration: 100 * time.Millisecond, Target: dst}
	s, err := Run(t.Context(), cfg, p, &Dialer{Socket: LocalSocket}, c.sink)
	if err != nil || s.OK != 40 || s.Failed != 0 {
		t.Fatalf("run: %+v %v", s, err)
	}
	ports := map[int]int{}
	for _, r := range c.bySeq(t) {
		ports[r.LocalPort]++
		if r.Connect <= 0 || r.FirstByte < r.Connect || r.Total < r.FirstByte || r.BytesIn == 0 || r.BytesOut == 0 {
			t.Errorf("record %d: connect %d first byte %d total %d bytes %d/%d", r.Seq, r.Connect, r.FirstByte,
				r.Total, r.BytesIn, r.BytesOut)
		}
	}
	if len(ports) != 2 || accepted.Load() != 2 || p.Sessions() != 2 {
		t.Errorf("source ports %v, %d accepted, %d sessions: want 2 of each", ports, accepted.Load(), p.Sessions())
	}
	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-f.quits:
		case <-time.After(5 * time.Second):
			t.Fatal("a session was not quit")
		}
	}
	var rec results.Record
	p.Attempt(t.Context(), &Dialer{Socket: LocalSocket}, dst, &rec)
	if !strings.Contains(rec.Detail, ErrPersistentClosed.Error()) || p.Sessions() != 0 {
		t.Errorf("after close: %s %q, %d sessions", rec.Outcome, rec.Detail, p.Sessions())
	}
}

// TestPersistentFailures: a failed exchange drops its session (the next attempt reconnects), and an attempt
// that finds no free session before its deadline is a connect timeout.
func TestPersistentFailures(t *testing.T) {
	var accepted atomic.Int32
	f := fakeMySQL{queryErr: true, quits: make(chan bool, 4)}
	dst := serve(t, func(c *net.TCPConn) { accepted.Add(1); f.serve(c) })
	p, err := NewPersistent(MySQL{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	d := &Dialer{Socket: LocalSocket}
	for i := range 2 {
		var rec results.Record
		p.Attempt(t.Context(), d, dst, &rec)
		if rec.Outcome != results.OutcomeProtoError || !strings.HasPrefix(rec.Detail, "1064 ") || p.Sessions() != 0 {
			t.Fatalf("attempt %d: %s %q, %d sessions", i, rec.Outcome, rec.Detail, p.Sessions())
		}
	}
	if accepted.Load() != 2 {
		t.Errorf("%d connections, want 2 (one per failed attempt)", accepted.Load())
	}

	s := <-p.slots // hold the only slot
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	var rec results.Record
	p.Attempt(ctx, d, dst, &rec)
	p.slots <- s
	if rec.Outcome != results.OutcomeTimeout || rec.Phase != results.PhaseConnect ||
		!strings.Contains(rec.Detail, "no free connection of 1") {
		t.Errorf("busy pool: %s/%s %q", rec.Outcome, rec.Phase, rec.Detail)
	}
	if _, err := NewPersistent(MySQL{}, 0); err == nil {
		t.Error("0 connections accepted")
	}
	if _, err := NewPersistent(nil, 1); err == nil || errors.Is(err, ErrPersistentClosed) {
		t.Errorf("nil opener: %v", err)
	}
}
