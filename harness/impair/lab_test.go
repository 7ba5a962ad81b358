package impair_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/impair"
	"github.com/faultlab/faultlab/harness/netns"
	"github.com/faultlab/faultlab/harness/testutil"
	"golang.org/x/sys/unix"
)

// Privileged test helpers: a two-host lab (a on 198.18.0.2, b on 198.18.1.2, star around the router) and
// traffic of our own between sockets created inside the hosts' namespaces.

type lab struct {
	env  *harness.Env
	a, b harness.NetnsHost
}

func newPrefix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return harness.PrefixBase + "i" + hex.EncodeToString(b)
}

func newLab(t testing.TB) *lab {
	t.Helper()
	testutil.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo := harness.Topology{Hosts: []harness.HostSpec{{Name: "a"}, {Name: "b"}}}
	env, err := netns.New().Build(ctx, newPrefix(t), topo, t.TempDir())
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("build lab: %v", err)
	}
	return &lab{env: env, a: env.Host("a").(harness.NetnsHost), b: env.Host("b").(harness.NetnsHost)}
}

// engine opens the userspace engine on the lab, closed at cleanup.
func (l *lab) engine(t testing.TB, opts impair.Options) impair.Engine {
	t.Helper()
	e, err := impair.New(impair.EngineUserspace, impair.TargetOf(l.env), opts)
	if err != nil {
		t.Fatalf("open userspace engine: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("close engine: %v", err)
		}
	})
	return e
}

func apply(t testing.TB, e impair.Engine, host string, dir impair.Direction, imp impair.Impairment) {
	t.Helper()
	if err := e.Apply(context.Background(), impair.Link(host), dir, imp); err != nil {
		t.Fatalf("apply %s %s %v: %v", host, dir, imp, err)
	}
}

func addr(h harness.Host, port int) netip.AddrPort {
	return netip.AddrPortFrom(h.Addrs()[0], uint16(port))
}

// listenUDP opens a UDP socket inside h with a large receive buffer.
func listenUDP(t testing.TB, h harness.NetnsHost, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := h.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr(h, port)))
		if err != nil {
			return err
		}
		if err := c.SetReadBuffer(8 << 20); err != nil {
			return err
		}
		rc, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		}); err != nil {
			return err
		}
		return serr
	})
	if err != nil {
		t.Fatalf("listen udp on %s: %v", h.Name(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readTS reads a datagram and the kernel's receive timestamp (SO_TIMESTAMPNS): measurements use it, so a
// test goroutine that runs late under CPU load does not count as network delay.
func readTS(c *net.UDPConn, buf, oob []byte) (int, netip.AddrPort, time.Time, error) {
	n, oobn, _, from, err := c.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		return 0, from, time.Time{}, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return 0, from, time.Time{}, err
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:]))
			return n, from, time.Unix(sec, nsec), nil
		}
	}
	return n, from, time.Now(), nil
}

// echo answers every datagram on c until c is closed, appending how long it held the datagram (from the
// kernel's receive timestamp to just before the answer) so the client can subtract it.
func echo(c *net.UDPConn) {
	buf, oob := make([]byte, 2048), make([]byte, 128)
	for {
		n, from, rx, err := readTS(c, buf, oob)
		if err != nil {
			return
		}
		if n < 16 {
			continue
		}
		binary.LittleEndian.PutUint64(buf[8:], uint64(time.Since(rx)))
		_, _ = c.WriteToUDPAddrPort(buf[:n], from)
	}
}

// probe is one answered round trip: when it was sent and how long it took.
type probe struct {
	sent time.Time
	rtt  time.Duration
}

// pingUDP sends n probes from a to b's echo server, one every interval without waiting for answers,
// and returns the round-trip times of the answered ones (sorted) and how many went unanswered.
func pingUDP(t testing.TB, l *lab, n int, interval time.Duration) ([]time.Duration, int) {
	t.Helper()
	probes, lost := pingProbes(t, l, n, interval)
	return rtts(probes), lost
}

func rtts(probes []probe) []time.Duration {
	out := make([]time.Duration, len(probes))
	for i, p := range probes {
		out[i] = p.rtt
	}
	slices.Sort(out)
	return out
}

// pingProbes is pingUDP with each probe's send time. A round trip runs from just before the send to the
// kernel's receive timestamp of the answer, minus the time the echo server held the probe.
func pingProbes(t testing.TB, l *lab, n int, interval time.Duration) ([]probe, int) {
	t.Helper()
	srv := listenUDP(t, l.b, 7000)
	defer srv.Close()
	go echo(srv)
	cli := listenUDP(t, l.a, 7001)
	probes := make([]probe, 0, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf, oob := make([]byte, 64), make([]byte, 128)
		for len(probes) < n {
			k, _, rx, err := readTS(cli, buf, oob)
			if err != nil {
				return
			}
			if k >= 16 {
				sent := time.Unix(0, int64(binary.LittleEndian.Uint64(buf)))
				held := time.Duration(binary.LittleEndian.Uint64(buf[8:]))
				probes = append(probes, probe{sent: sent, rtt: rx.Sub(sent) - held})
			}
		}
	}()
	msg := make([]byte, 64)
	to := addr(l.b, 7000)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint64(msg, uint64(time.Now().UnixNano()))
		if _, err := cli.WriteToUDPAddrPort(msg, to); err != nil {
			t.Fatalf("ping: %v", err)
		}
		time.Sleep(interval)
	}
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	cli.Close()
	<-done
	return probes, n - len(probes)
}

// blastResult is what a UDP receiver saw of a numbered stream.
type blastResult struct {
	sent, received int
	reordered      int             // datagrams with a lower number than one received before
	seqs           []int           // numbers received, in arrival order
	sendTime       time.Duration   // how long sending took (the offered rate is sent/sendTime)
	oneWay         []time.Duration // per received datagram, sorted
}

// blastUDP sends n numbered, timestamped datagrams from a to b at pps and counts them at b.
func blastUDP(t testing.TB, l *lab, n int, pps float64, size int) blastResult {
	t.Helper()
	rx := listenUDP(t, l.b, 7100)
	tx := listenUDP(t, l.a, 7101)
	defer tx.Close()
	res := blastResult{sent: n, oneWay: make([]time.Duration, 0, n)}
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf, oob := make([]byte, 2048), make([]byte, 128)
		var highest int64 = -1
		for {
			k, _, at, err := readTS(rx, buf, oob)
			if err != nil {
				return
			}
			if k < 16 {
				continue
			}
			seq := int64(binary.LittleEndian.Uint64(buf))
			sent := time.Unix(0, int64(binary.LittleEndian.Uint64(buf[8:])))
			res.oneWay = append(res.oneWay, at.Sub(sent))
			res.received++
			res.seqs = append(res.seqs, int(seq))
			got.Add(1)
			if seq < highest {
				res.reordered++
			}
			highest = max(highest, seq)
		}
	}()
	msg := make([]byte, max(size, 16))
	to := addr(l.b, 7100)
	interval := time.Duration(float64(time.Second) / pps)
	start := time.Now()
	for i := 0; i < n; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 50*time.Microsecond {
			time.Sleep(d)
		}
		binary.LittleEndian.PutUint64(msg, uint64(i))
		binary.LittleEndian.PutUint64(msg[8:], uint64(time.Now().UnixNano()))
		if _, err := tx.WriteToUDPAddrPort(msg, to); err != nil {
			t.Fatalf("blast: %v", err)
		}
	}
	res.sendTime = time.Since(start)
	// Wait until the stream has gone quiet (every datagram in, or nothing new for a while).
	deadline := time.Now().Add(5 * time.Second)
	for last := -1; time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		cur := int(got.Load())
		if cur == n || cur == last {
			break
		}
		last = cur
	}
	rx.Close()
	<-done
	slices.Sort(res.oneWay)
	return res
}

// quantile of sorted durations.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(int(q*float64(len(d))), len(d)-1)]
}

func mean(d []time.Duration) time.Duration {
	var s time.Duration
	for _, x := range d {
		s += x
	}
	return s / time.Duration(max(len(d), 1))
}

// nftRuleset is `nft list ruleset` in the router namespace: the cross-check with the nft tool.
func nftRuleset(t testing.TB, l *lab) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", l.env.Prefix+"-router", "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v: %s", err, out)
	}
	return string(out)
}

// tcShow is `tc qdisc show` in the router namespace.
func tcShow(t testing.TB, l *lab) string {
	t.Helper()
	out, err := exec.Command("tc", "-n", l.env.Prefix+"-router", "qdisc", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("tc qdisc show: %v: %s", err, out)
	}
	return string(out)
}

func mustContain(t testing.TB, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s: missing %q in:\n%s", what, sub, s)
		}
	}
}

func fmtDur(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/1e6) }
