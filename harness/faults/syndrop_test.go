package faults

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/testutil"
)

// nftRuleset is the cross-check with the nft binary: the namespace's ruleset as nft prints it.
func nftRuleset(t *testing.T, h harness.NetnsHost) string {
	t.Helper()
	return nsExec(t, h, "nft", "list", "ruleset")
}

// nsExec runs a command in h's namespace (ip netns exec) and returns its output; a failure fails t.
func nsExec(t *testing.T, h harness.NetnsHost, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", filepath.Base(h.NetnsPath())}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func drops(t *testing.T, s *SynDrop) uint64 {
	t.Helper()
	n, err := s.Drops()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSynDrop(t *testing.T) {
	lab := newLab(t)
	addr, other := at(lab.proxy, 80), at(lab.proxy, 81)
	listenIn(t, lab.proxy, addr)
	listenIn(t, lab.proxy, other)
	s, err := NewSynDrop(lab.proxy, lab.prefix, 80, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if rs := nftRuleset(t, lab.proxy); !strings.Contains(rs, "table inet "+lab.prefix+"-syndrop") ||
		!strings.Contains(rs, "type filter hook input priority filter; policy accept;") || strings.Contains(rs, "tcp dport") {
		t.Fatalf("ruleset before the window:\n%s", rs)
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
	rs := nftRuleset(t, lab.proxy)
	// nft prints `tcp flags & (syn | ack) == syn` as `tcp flags syn / syn,ack`.
	if !strings.Contains(rs, `tcp dport 80 tcp flags syn / syn,ack counter name "syn_drops" drop`) &&
		!strings.Contains(rs, `tcp dport 80 tcp flags & (syn | ack) == syn counter name "syn_drops" drop`) {
		t.Fatalf("ruleset in the window:\n%s", rs)
	}
	// A new connection gets no SYN-ACK: it times out (neither refused nor reset).
	_, err = dialFrom(lab.client, addr, 1500*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("connect in the window: %v, want a timeout", err)
	}
	// The first SYN and its retransmission after 1 s.
	if n := drops(t, s); n < 2 {
		t.Errorf("drops = %d after one timed-out connect, want at least 2", n)
	}
	// An established connection goes on, and another port is untouched.
	if err := echo(est); err != nil {
		t.Errorf("established connection in the window: %v", err)
	}
	if c, err := dialFrom(lab.client, other, time.Second); err != nil {
		t.Errorf("connect to another port in the window: %v", err)
	} else {
		c.Close()
	}

	if err := s.After(ctx); err != nil {
		t.Fatal(err)
	}
	if rs := nftRuleset(t, lab.proxy); strings.Contains(rs, "tcp dport") || !strings.Contains(rs, "syn_drops") {
		t.Fatalf("ruleset after the window:\n%s", rs)
	}
	before := drops(t, s)
	c, err := dialFrom(lab.client, addr, time.Second)
	if err != nil {
		t.Fatalf("connect after the window: %v", err)
	}
	c.Close()
	if n := drops(t, s); n != before {
		t.Errorf("drops went from %d to %d outside the window", before, n)
	}
	// The counter totals the windows.
	if err := s.Before(ctx); err != nil {
		t.Fatal(err)
	}
	_, _ = dialFrom(lab.client, addr, 200*time.Millisecond)
	if err := s.After(ctx); err != nil {
		t.Fatal(err)
	}
	total := drops(t, s)
	if total <= before {
		t.Errorf("drops %d after a second window, want more than %d", total, before)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if rs := strings.TrimSpace(nftRuleset(t, lab.proxy)); rs != "" {
		t.Errorf("ruleset after Close:\n%s", rs)
	}
	if n, err := s.Drops(); err != nil || n != total {
		t.Errorf("Drops after Close = %d, %v; want the last count %d", n, err, total)
	}
}

func TestSynDropWindow(t *testing.T) {
	lab := newLab(t)
	s, err := NewSynDrop(lab.proxy, lab.prefix, 80, 50*time.Millisecond, 80*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	begin := time.Now()
	if err := s.Before(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 40*time.Millisecond || s.Undrained() != 0 {
		t.Errorf("Before with no queued connection took %s (undrained %d), want an immediate return", d,
			s.Undrained())
	}
	begin = time.Now()
	if err := s.After(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d < 80*time.Millisecond {
		t.Errorf("After returned after %s, want the 80ms window", d)
	}
}

// TestSynDropWaitsForQueue checks that Before waits for a listener's accept queue to drain, up to the before
// window, and counts a reload whose queue did not drain.
func TestSynDropWaitsForQueue(t *testing.T) {
	lab := newLab(t)
	var ln net.Listener
	if err := lab.proxy.Do(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(lab.proxy.Addrs()[0], 8080).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var c net.Conn
	if err := lab.client.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(lab.proxy.Addrs()[0], 8080).String(), 2*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := NewSynDrop(lab.proxy, lab.prefix, 8080, 60*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	begin := time.Now()
	if err := s.Before(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d < 60*time.Millisecond || s.Undrained() != 1 {
		t.Errorf("Before with a queued connection returned after %s, undrained %d; want >= 60ms and 1", d,
			s.Undrained())
	}
	_ = s.After(context.Background())
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if err := s.Before(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Undrained() != 1 {
		t.Errorf("undrained %d after the queue was drained, want still 1", s.Undrained())
	}
}

// rootHost is a host whose namespace is the lab process's own: NewSynDrop must refuse it.
type rootHost struct{}

func (rootHost) Name() string             { return "root" }
func (rootHost) Addrs() []netip.Addr      { return nil }
func (rootHost) NetnsPath() string        { return "/proc/self/ns/net" }
func (rootHost) Do(fn func() error) error { return errors.New("not in a test") }
func (rootHost) Start(context.Context, harness.ProcSpec) (*harness.Process, error) {
	return nil, errors.New("not in a test")
}

func TestSynDropRefusesRootNetns(t *testing.T) {
	testutil.RequireRoot(t)
	_, err := NewSynDrop(rootHost{}, "fl-tx", 80, 0, 0)
	if err == nil || !strings.Contains(err.Error(), "root network namespace") {
		t.Fatalf("NewSynDrop in the root namespace: %v, want a refusal", err)
	}
}

func echo(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	buf := make([]byte, 4)
	_, err := c.Read(buf)
	if err == nil && string(buf) != "ping" {
		err = errors.New("echo: got " + string(buf))
	}
	return err
}
