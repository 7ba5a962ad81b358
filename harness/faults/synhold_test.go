package faults

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"golang.org/x/sys/unix"
)

// reuseListen listens on addr inside h with SO_REUSEPORT (as HAProxy does), echoing until closed.
func reuseListen(t *testing.T, h harness.NetnsHost, addr netip.AddrPort) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		if err != nil {
			return err
		}
		return serr
	}}
	var l net.Listener
	if err := h.Do(func() (err error) { l, err = lc.Listen(context.Background(), "tcp", addr.String()); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go serveEcho(l)
	return l
}

// TestSynHold: a connect made while SYNs are held completes only when the hold ends, shortly after it
// (held, not dropped: no 1 s SYN retransmission); the hold lasts until the reload's old listener has
// closed; established connections and other ports are untouched; the engine is the NFQUEUE gate here.
func TestSynHold(t *testing.T) {
	lab := newLab(t)
	addr, other := at(lab.proxy, 80), at(lab.proxy, 81)
	old := reuseListen(t, lab.proxy, addr)
	listenIn(t, lab.proxy, other)
	s, err := NewSynHold(lab.proxy, lab.prefix, 80, 50*time.Millisecond, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	est, err := dialFrom(lab.client, addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer est.Close()

	ctx := context.Background()
	if err := s.Before(ctx); err != nil {
		t.Fatal(err)
	}
	if rs := nftRuleset(t, lab.proxy); !strings.Contains(rs, "table ip "+lab.prefix+"-gate") ||
		!strings.Contains(rs, "tcp dport 80") {
		t.Fatalf("ruleset while holding:\n%s", rs)
	}
	type dial struct {
		c   net.Conn
		err error
		at  time.Time
	}
	done := make(chan dial, 1)
	go func() {
		c, err := dialFrom(lab.client, addr, 3*time.Second)
		done <- dial{c, err, time.Now()}
	}()
	// "Reload": a new listener joins the reuse-port group, and the old one closes 200 ms later.
	reuseListen(t, lab.proxy, addr)
	time.Sleep(200 * time.Millisecond)
	select {
	case d := <-done:
		t.Fatalf("connect completed during the hold: %v", d.err)
	default:
	}
	if err := echo(est); err != nil {
		t.Errorf("established connection during the hold: %v", err)
	}
	if c, err := dialFrom(lab.client, other, time.Second); err != nil {
		t.Errorf("another port during the hold: %v", err)
	} else {
		c.Close()
	}
	closedAt := time.Now()
	old.Close()
	if err := s.After(ctx); err != nil {
		t.Fatal(err)
	}
	opened := time.Now()
	d := <-done
	if d.err != nil {
		t.Fatalf("held connect: %v", d.err)
	}
	defer d.c.Close()
	if err := echo(d.c); err != nil {
		t.Errorf("held connection: %v", err)
	}
	if opened.Before(closedAt) {
		t.Errorf("the hold ended before the old listener closed")
	}
	// Released at the hold's end, not retransmitted a second later.
	if lag := d.at.Sub(opened); lag > 300*time.Millisecond {
		t.Errorf("connect completed %s after the hold ended: the SYN was not held", lag)
	}
	if rs := nftRuleset(t, lab.proxy); strings.Contains(rs, "tcp dport 80") {
		t.Errorf("queue rule left after the hold:\n%s", rs)
	}
	st := s.Stats()
	t.Logf("stats: %+v queue %+v", st, *st.Queue)
	if st.Engine != HoldEngineNFQueue || st.PlugUnavailable == "" {
		t.Errorf("engine %q, plug %q", st.Engine, st.PlugUnavailable)
	}
	if st.Holds != 1 || st.Unclosed != 0 || st.HoldMax < 200*time.Millisecond {
		t.Errorf("holds %d, unclosed %d, max %s", st.Holds, st.Unclosed, st.HoldMax)
	}
	if q := st.Queue; q.Queued < 1 || q.Released < 1 || q.LateMax < 150*time.Millisecond || q.Overflow != 0 {
		t.Errorf("queue: queued %d released %d held max %s overflow %d", q.Queued, q.Released, q.LateMax, q.Overflow)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if rs := nftRuleset(t, lab.proxy); strings.Contains(rs, lab.prefix+"-gate") {
		t.Errorf("table left after Close:\n%s", rs)
	}
}

// TestSynHoldInherited: a reload that binds no new listener (the sockets were handed over) closes none,
// so the hold ends as soon as the reload does.
func TestSynHoldInherited(t *testing.T) {
	lab := newLab(t)
	addr := at(lab.proxy, 80)
	reuseListen(t, lab.proxy, addr)
	s, err := NewSynHold(lab.proxy, lab.prefix, 80, 50*time.Millisecond, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	if err := s.Before(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.After(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("After took %s with no listener to wait for", d)
	}
	if st := s.Stats(); st.Unclosed != 0 || st.Holds != 1 {
		t.Errorf("stats %+v", st)
	}
	if c, err := dialFrom(lab.client, addr, time.Second); err != nil {
		t.Errorf("connect after the hold: %v", err)
	} else {
		c.Close()
	}
}
