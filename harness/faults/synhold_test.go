package faults

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/impair"
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
// closed; established connections and other ports are untouched; each engine leaves nothing behind. The
// plug engine needs sch_plug: on a kernel without it (this machine's) the plug subtest checks that asking
// for the engine fails clearly (an error wrapping impair.ErrNoPlug) and TestSynHoldInGuest runs the hold in
// a guest whose kernel has the qdisc, with FAULTLAB_REQUIRE_PLUG=1 (a kernel without it fails there).
func TestSynHold(t *testing.T) {
	t.Run("nfqueue", func(t *testing.T) { testSynHold(t, HoldEngineNFQueue) })
	t.Run("plug", func(t *testing.T) { testSynHold(t, HoldEnginePlug) })
	t.Run("auto", func(t *testing.T) { testSynHold(t, HoldEngineAuto) })
}

func testSynHold(t *testing.T, engine string) {
	lab := newLab(t)
	plugErr := impair.DetectPlug(lab.proxy)
	if os.Getenv("FAULTLAB_REQUIRE_PLUG") == "1" && plugErr != nil {
		t.Fatalf("FAULTLAB_REQUIRE_PLUG=1: %v", plugErr)
	}
	if engine == HoldEnginePlug && plugErr != nil {
		_, err := NewSynHold(lab.proxy, lab.prefix, 80, 50*time.Millisecond, 500*time.Millisecond, engine)
		if !errors.Is(err, impair.ErrNoPlug) {
			t.Fatalf("plug engine asked for without sch_plug: err %v, want one wrapping ErrNoPlug", err)
		}
		t.Logf("refused, as it must be here (TestSynHoldInGuest holds with it): %v", err)
		return
	}
	want := engine
	if engine == HoldEngineAuto {
		want = HoldEngineNFQueue
		if plugErr == nil {
			want = HoldEnginePlug
		}
	}
	addr, other := at(lab.proxy, 80), at(lab.proxy, 81)
	old := reuseListen(t, lab.proxy, addr)
	listenIn(t, lab.proxy, other)
	s, err := NewSynHold(lab.proxy, lab.prefix, 80, 50*time.Millisecond, 500*time.Millisecond, engine)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if s.Engine() != want {
		t.Fatalf("engine %s, want %s", s.Engine(), want)
	}
	est, err := dialFrom(lab.client, addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer est.Close()

	ctx := context.Background()
	if err := s.Before(ctx); err != nil {
		t.Fatal(err)
	}
	holding(t, lab, want, true)
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
	holding(t, lab, want, false)
	st := s.Stats()
	switch {
	case st.Plug != nil:
		t.Logf("stats: %+v, plug %+v", st, *st.Plug)
	case st.Queue != nil:
		t.Logf("stats: %+v, queue %+v", st, *st.Queue)
	}
	if st.Engine != want || (want == HoldEngineNFQueue) != (st.PlugUnavailable != "") {
		t.Errorf("engine %q, plug %q", st.Engine, st.PlugUnavailable)
	}
	if st.Holds != 1 || st.Unclosed != 0 || st.HoldMax < 200*time.Millisecond {
		t.Errorf("holds %d, unclosed %d, max %s", st.Holds, st.Unclosed, st.HoldMax)
	}
	switch want {
	case HoldEngineNFQueue:
		if q := st.Queue; q == nil || st.Plug != nil || q.Queued < 1 || q.Released < 1 ||
			q.LateMax < 150*time.Millisecond || q.Overflow != 0 {
			t.Errorf("queue %+v, plug %+v", q, st.Plug)
		}
	case HoldEnginePlug:
		// The one connect dialled during the hold sent one SYN; the established connection's and the other
		// port's packets never reached the plug.
		if p := st.Plug; p == nil || st.Queue != nil || p.Holds != 1 || p.Held != 1 || p.HeldMax != 1 ||
			p.Passed < 2 || p.Dropped != 0 || len(p.Links) == 0 {
			t.Errorf("plug %+v, queue %+v", p, st.Queue)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if rs := nftRuleset(t, lab.proxy); strings.Contains(rs, lab.prefix+"-gate") {
		t.Errorf("table left after Close:\n%s", rs)
	}
	if tc := tcShow(t, lab.proxy); strings.Contains(tc, "plug") || strings.Contains(tc, "ingress") {
		t.Errorf("qdiscs left after Close:\n%s", tc)
	}
}

// holding checks the engine's kernel state while a hold is (on) or is not under way: the NFQUEUE
// engine's queue rule exists only during the hold; the plug engine's redirect and plug exist throughout.
func holding(t *testing.T, lab testLab, engine string, on bool) {
	t.Helper()
	rs, tc := nftRuleset(t, lab.proxy), tcShow(t, lab.proxy)
	switch engine {
	case HoldEngineNFQueue:
		if strings.Contains(rs, "tcp dport 80") != on || !strings.Contains(rs, "table ip "+lab.prefix+"-gate") {
			t.Fatalf("ruleset (holding %v):\n%s", on, rs)
		}
	case HoldEnginePlug:
		if !strings.Contains(tc, "qdisc plug 1: dev flplug") || !strings.Contains(tc, "qdisc ingress ffff:") {
			t.Fatalf("qdiscs (holding %v):\n%s", on, tc)
		}
		if strings.Contains(rs, "-gate") {
			t.Fatalf("the plug engine left an NFQUEUE table:\n%s", rs)
		}
	}
}

// tcShow is `tc qdisc show` in h's namespace (a cross-check of what the engines built through netlink).
func tcShow(t *testing.T, h harness.NetnsHost) string {
	t.Helper()
	return nsExec(t, h, "tc", "qdisc", "show")
}

// TestSynHoldInherited: a reload that binds no new listener (the sockets were handed over) closes none,
// so the hold ends as soon as the reload does.
func TestSynHoldInherited(t *testing.T) {
	lab := newLab(t)
	addr := at(lab.proxy, 80)
	reuseListen(t, lab.proxy, addr)
	s, err := NewSynHold(lab.proxy, lab.prefix, 80, 50*time.Millisecond, 2*time.Second, HoldEngineAuto)
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
