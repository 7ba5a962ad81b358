package services

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/netns"
	"github.com/faultlab/faultlab/harness/testutil"
	"github.com/faultlab/faultlab/loadgen"
	"github.com/faultlab/faultlab/results"
)

// buildLab builds a netns lab of hosts torn down by t.Cleanup and returns its hosts by name.
func buildLab(t *testing.T, hosts ...harness.HostSpec) map[string]harness.NetnsHost {
	t.Helper()
	testutil.RequireRoot(t)
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env, err := netns.New().Build(ctx, harness.PrefixBase+"t"+hex.EncodeToString(b),
		harness.Topology{Hosts: hosts}, t.TempDir())
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("build lab: %v", err)
	}
	out := map[string]harness.NetnsHost{}
	for name, h := range env.Hosts {
		out[name] = h.(harness.NetnsHost)
	}
	return out
}

// startMySQLProxy starts haproxy in tcp mode on port 3306 of h in front of db, logging health checks and
// connections, stopped by t.Cleanup.
func startMySQLProxy(t *testing.T, h harness.NetnsHost, db netip.AddrPort, opts map[string]string) *HAProxy {
	t.Helper()
	o := map[string]string{"mysql_check_user": MariaDBCheckUser, "log_health": "true", "log_level": "info",
		"nbthread": "1"}
	for k, v := range opts {
		o[k] = v
	}
	x, err := NewHAProxy(h, t.TempDir(), HAProxyConfig{Name: "lb", Bind: at(h, 3306), Mode: "tcp",
		Servers: []netip.AddrPort{db}, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = x.Stop(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := x.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return x
}

// runMySQL runs n attempts of w (short MySQL connections when nil) at rate from client to dst and returns the
// records in Seq order.
func runMySQL(t *testing.T, client harness.NetnsHost, dst netip.AddrPort, w loadgen.Workload, n int,
	rate float64) []results.Record {
	t.Helper()
	recs, _ := runMySQLAt(t, client, dst, w, n, rate, time.Time{})
	return recs
}

// runMySQLAt is runMySQL with the measured phase starting at epoch (now when zero); it returns the epoch the
// records' times count from.
func runMySQLAt(t *testing.T, client harness.NetnsHost, dst netip.AddrPort, w loadgen.Workload, n int,
	rate float64, epoch time.Time) ([]results.Record, time.Time) {
	t.Helper()
	sf, err := harness.NewSocketFactory(client.NetnsPath())
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	recs := make([]results.Record, n)
	var mu sync.Mutex
	cfg := loadgen.Config{Cell: t.Name(), Rate: rate, Duration: time.Duration(float64(n) / rate * float64(time.Second)),
		Timeout: 5 * time.Second, Target: dst, Epoch: epoch}
	if w == nil {
		w = loadgen.MySQL{}
	}
	s, err := loadgen.Run(context.Background(), cfg, w, &loadgen.Dialer{Socket: sf.Socket}, func(r *results.Record) {
		mu.Lock()
		if r.Seq < uint64(n) {
			recs[r.Seq] = *r
		}
		mu.Unlock()
	})
	if err != nil || s.Launched != int64(n) {
		t.Fatalf("run: launched %d of %d: %v", s.Launched, n, err)
	}
	return recs, s.Epoch
}

// stopAndParse waits (up to 3 s) until haproxy has logged conns connection lines, stops it and parses its log.
func stopAndParse(t *testing.T, x *HAProxy, conns int) *HAProxyLog {
	t.Helper()
	parse := func() *HAProxyLog {
		f, err := os.Open(x.LogPath())
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		l, err := ParseHAProxyLog(f)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); <-tick.C {
		if l := parse(); l.Count(EventConn)+l.Count(EventConnFailed) >= conns {
			break
		}
	}
	if err := x.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	return parse()
}

func TestHAProxyMySQL(t *testing.T) {
	lab := newLab(t)
	db := startMariaDB(t, lab.backend)
	x := startMySQLProxy(t, lab.proxy, db.Addr(), map[string]string{"check_inter": "200ms"})
	recs := runMySQL(t, lab.client, at(lab.proxy, 3306), nil, 200, 400)
	for _, r := range recs {
		if r.Outcome != results.OutcomeOK {
			t.Fatalf("attempt %d: %s/%s %q", r.Seq, r.Outcome, r.Phase, r.Detail)
		}
	}
	l := stopAndParse(t, x, 200)
	if st := l.ServerState("be/s0"); st != "UP" {
		t.Errorf("server state %q, want UP; events %v", st, l.Events[:min(len(l.Events), 5)])
	}
	if n := l.ByStatus(EventConn)["--"]; n != 200 || l.Count(EventConnFailed) != 0 || l.Count(EventConnectError) != 0 {
		t.Errorf("log: %d normal connection lines (want 200), %d failed, %d connect errors", n,
			l.Count(EventConnFailed), l.Count(EventConnectError))
	}
	if !l.Syslog || len(l.Series(EventConn, recsEpoch(l), time.Second)) == 0 {
		t.Errorf("log lines carry no RFC 5424 timestamps")
	}
}

// recsEpoch is the time of the log's first event.
func recsEpoch(l *HAProxyLog) time.Time {
	if len(l.Events) == 0 {
		return time.Time{}
	}
	return l.Events[0].Time
}

// TestHAProxySourcePortExhaustion: short MySQL connections at 500/s through haproxy whose host has 1000
// source ports (ip_local_port_range 40000 40999) and checks MariaDB every 200 ms. haproxy mostly closes first
// toward MariaDB (the client sends COM_QUIT and closes; MariaDB closes first on COM_QUIT in a quarter to a third
// of connections, a race), so most connections leave a TIME_WAIT on the proxy for 60 s and connect() fails
// with EADDRNOTAVAIL once all 1000 ports are held. When that comes depends on the race's share f (65-82%
// measured on these machines: attempt ~1,220 to ~1,540), so the test does not bound the attempt number by a
// guess at f: it gives the run enough attempts to exhaust the range for any f above a third (3,000), and checks
// the mechanism with the kernel's own socket table sampled every 10 ms (see checkHeldAtFailure). Two source
// addresses, tcp_tw_reuse=1, or 4 persistent client connections avoid it.
func TestHAProxySourcePortExhaustion(t *testing.T) {
	ports := map[string]string{"net.ipv4.ip_local_port_range": "40000 40999"}
	lab := buildLab(t, harness.HostSpec{Name: "client"}, harness.HostSpec{Name: "backend"},
		harness.HostSpec{Name: "proxy"}, harness.HostSpec{Name: "proxy2", NumAddrs: 2},
		harness.HostSpec{Name: "proxyreuse"}, harness.HostSpec{Name: "proxypersist"})
	for name, kv := range map[string]map[string]string{"proxy": ports, "proxy2": ports, "proxypersist": ports,
		"proxyreuse": {"net.ipv4.ip_local_port_range": "40000 40999", "net.ipv4.tcp_tw_reuse": "1"}} {
		if _, err := harness.ApplySysctls(lab[name], kv); err != nil {
			t.Fatal(err)
		}
	}
	db := startMariaDB(t, lab["backend"])
	p2 := lab["proxy2"].Addrs()
	tests := []struct {
		name, host string
		sources    string
		persistent int
		exhausted  bool
		attempts   int
	}{
		// 3,000 attempts exhaust 1,000 ports for any share f above a third; 1,500 cannot exhaust 2,000.
		{"one_source", "proxy", "", 0, true, 3000},
		{"two_sources", "proxy2", p2[0].String() + "," + p2[1].String(), 0, false, 1500},
		{"tw_reuse", "proxyreuse", "", 0, false, 1500},
		{"persistent", "proxypersist", "", 4, false, 1500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := lab[tt.host]
			opts := map[string]string{"check_inter": "200ms"}
			if tt.sources != "" {
				opts["sources"] = tt.sources
			}
			x := startMySQLProxy(t, h, db.Addr(), opts)
			var w loadgen.Workload
			p, err := loadgen.NewPersistent(loadgen.MySQL{}, max(tt.persistent, 1))
			if err != nil {
				t.Fatal(err)
			}
			if tt.persistent > 0 {
				w = p
			}
			epoch := time.Now().Add(100 * time.Millisecond)
			held := sampleHeld(t, h, db.Addr(), epoch)
			recs, _ := runMySQLAt(t, lab["client"], at(h, 3306), w, tt.attempts, 500, epoch)
			samples := held()
			if err := p.Close(context.Background()); err != nil {
				t.Error(err)
			}
			tw := timeWaitTo(t, h, db.Addr())
			conns := tt.attempts
			if tt.persistent > 0 {
				conns = tt.persistent // a connection line each, when the sessions close
			}
			l := stopAndParse(t, x, conns)
			first, failures := firstFailure(recs)
			t.Logf("first failure at attempt %d; failures %v; proxy TIME_WAIT toward MariaDB by source %v", first,
				failures, tw)
			t.Logf("haproxy log: %v; connection lines by state %v / failed %v; failed checks %v", counts(l),
				l.ByStatus(EventConn), l.ByStatus(EventConnFailed), l.ByStatus(EventCheckFailed))
			bySrv := map[string]int{}
			for _, ev := range l.Events {
				if ev.Kind == EventConnFailed {
					if bySrv[ev.Server]++; bySrv[ev.Server] == 1 {
						t.Logf("first failed connection line toward %s: %s", ev.Server, ev.Msg)
					}
				}
			}
			t.Logf("failed connection lines by server %v", bySrv)
			for _, k := range []HAProxyEventKind{EventConnectError, EventCheckFailed, EventServerDown} {
				if ev, ok := l.First(k); ok {
					t.Logf("first %s: %s", k, ev.Msg)
				}
			}
			if !tt.exhausted {
				if first >= 0 || l.Count(EventConnectError) > 0 {
					t.Errorf("%d failures, %d connect errors: want none", len(failures), l.Count(EventConnectError))
				}
				if n := tw[h.Addrs()[0]]; tt.persistent > 0 && n > 50 {
					t.Errorf("%d TIME_WAIT with persistent connections, want only the health checks'", n)
				}
				return
			}
			checkExhausted(t, recs, first, failures, tw, l)
			checkHeldAtFailure(t, recs, first, samples, 1000)
		})
	}
}

// checkExhausted checks how source port exhaustion shows: at the client, haproxy accepts, then closes without a
// greeting; in haproxy's log, "Connect() failed ... no free ports", connection lines with state SC and no
// server connect time, health checks failing with EADDRNOTAVAIL; at the end every port of the range is in
// TIME_WAIT toward MariaDB.
func checkExhausted(t *testing.T, recs []results.Record, first int, failures map[string]int, tw map[netip.Addr]int,
	l *HAProxyLog) {
	t.Helper()
	if first < 0 {
		t.Fatalf("no failure in %d attempts: 1000 ports at 500/s must run out within 60 s of TIME_WAIT", len(recs))
	}
	// Each attempt takes at most one port and only haproxy's checks (one per 200 ms) take others: the range
	// cannot run out before 1000 ports were taken. This bound holds for any share f.
	if checks := int(time.Duration(recs[first].Start)/(200*time.Millisecond)) + 2; first < 1000-checks {
		t.Errorf("first failure at attempt %d: fewer than the 1000 ports less %d checks were ever taken", first, checks)
	}
	if n := failures["proto_error/handshake lost connection: EOF reading greeting"]; n == 0 || n != len(recs)-first-okAfter(recs, first) {
		t.Errorf("failures %v: want only lost connections before the greeting", failures)
	}
	for src, n := range tw {
		if n != 1000 {
			t.Errorf("%d TIME_WAIT from %s toward MariaDB, want the 1000 ports of the range", n, src)
		}
	}
	if ev, ok := l.First(EventConnectError); !ok || ev.Info != "no free ports" {
		t.Errorf("no \"Connect() failed ... no free ports\" in haproxy's log (%v)", ev)
	}
	if l.ByStatus(EventConnFailed)["SC"] == 0 {
		t.Errorf("no connection line with termination state SC")
	}
	if ev, ok := l.First(EventCheckFailed); !ok || !strings.Contains(ev.Info, "Cannot assign requested address") {
		t.Errorf("no health check failing with EADDRNOTAVAIL (%v)", ev)
	}
}

// heldSample is how many sockets the proxy held toward the server at T (since the epoch).
type heldSample struct {
	T    time.Duration
	Held int
}

// sampleHeld counts, every 10 ms from now until the returned function is called, h's TCP sockets toward dst in
// any state but LISTEN: the (address, port) pairs the proxy holds toward the server. The function returns the
// samples, each stamped with the time its dump began.
func sampleHeld(t *testing.T, h harness.NetnsHost, dst netip.AddrPort, epoch time.Time) func() []heldSample {
	t.Helper()
	var d *harness.SockDiag
	if err := h.Do(func() (err error) { d, err = harness.OpenSockDiag(); return err }); err != nil {
		t.Fatal(err)
	}
	mask := uint32(0xfff) &^ (1 << harness.TCPListen)
	done, out := make(chan struct{}), make(chan []heldSample, 1)
	go func() {
		defer d.Close()
		var got []heldSample
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				out <- got
				return
			case <-tick.C:
			}
			s := heldSample{T: time.Since(epoch)}
			if _, err := d.Dump(mask, func(ds *harness.DiagSocket) {
				if ds.Remote == dst {
					s.Held++
				}
			}); err == nil {
				got = append(got, s)
			}
		}
	}()
	return func() []heldSample { close(done); return <-out }
}

// checkHeldAtFailure checks that the first failure came when the proxy held its whole range, from the socket
// table rather than from a guess at how many connections that takes. At the moment haproxy's connect() failed
// (somewhere in the failed attempt's [Start, Start+Total]) all ports were held. Between a sample at s and that
// moment, ports are released (MariaDB closed first) or taken, and only an attempt whose proxy-side connect could
// fall after s can take one: an attempt that started by then and had not yet received MariaDB's greeting
// (which needs the proxy's connection), plus at most one health check per 200 ms. So the last sample before
// the failure must show at least ports - taken - a few (sockets the dump missed while it ran). The bound
// follows from counting; it does not depend on the share of closes, and it fails if connect() failed for any
// reason other than a full range.
func checkHeldAtFailure(t *testing.T, recs []results.Record, first int, samples []heldSample, ports int) {
	t.Helper()
	if first < 0 {
		return
	}
	f := recs[first]
	fail := time.Duration(f.Start + max(f.Total, 0))
	if f.Total == 0 {
		fail = time.Duration(f.Start) + 5*time.Second // the workload's timeout
	}
	var last *heldSample
	peak := 0
	for i := range samples {
		peak = max(peak, samples[i].Held)
		if samples[i].T <= time.Duration(f.Start) {
			last = &samples[i]
		}
	}
	if last == nil {
		t.Fatalf("no socket sample before the first failure at %s (%d samples)", time.Duration(f.Start), len(samples))
	}
	taken := 2 + int((fail-last.T)/(200*time.Millisecond)) // health checks
	for _, r := range recs[:first] {
		greeted := time.Duration(r.Intended + r.FirstByte)
		if time.Duration(r.Start) <= fail && (r.FirstByte == 0 || greeted > last.T) {
			taken++
		}
	}
	const missed = 5
	t.Logf("first failure at %s (attempt %d); %d ports held at %s; at most %d taken since; peak %d",
		time.Duration(f.Start), first, last.Held, last.T, taken, peak)
	if last.Held < ports-taken-missed {
		t.Errorf("%d sockets toward the server %s before the first failure, and at most %d could be taken "+
			"after: the range of %d was not full when connect() failed", last.Held, time.Duration(f.Start)-last.T,
			taken, ports)
	}
	if peak > ports+missed {
		t.Errorf("peak of %d sockets toward the server, more than the %d ports of the range", peak, ports)
	}
}

// firstFailure returns the index of the first failed record (-1 if none) and the failures by outcome, phase and
// detail.
func firstFailure(recs []results.Record) (int, map[string]int) {
	first, failures := -1, map[string]int{}
	for i, r := range recs {
		if r.Outcome == results.OutcomeOK {
			continue
		}
		if first < 0 {
			first = i
		}
		failures[string(r.Outcome)+"/"+string(r.Phase)+" "+r.Detail]++
	}
	return first, failures
}

// okAfter counts the successful records from index first on.
func okAfter(recs []results.Record, first int) int {
	n := 0
	for _, r := range recs[max(first, 0):] {
		if r.Outcome == results.OutcomeOK {
			n++
		}
	}
	return n
}

func counts(l *HAProxyLog) map[HAProxyEventKind]int {
	out := map[HAProxyEventKind]int{}
	for _, ev := range l.Events {
		out[ev.Kind]++
	}
	return out
}

// timeWaitTo counts h's TIME_WAIT sockets toward dst by local address.
func timeWaitTo(t *testing.T, h harness.NetnsHost, dst netip.AddrPort) map[netip.Addr]int {
	t.Helper()
	out := map[netip.Addr]int{}
	err := h.Do(func() error {
		return harness.DiagTCP(1<<harness.TCPTimeWait, func(s *harness.DiagSocket) {
			if s.Remote == dst {
				out[s.Local.Addr()]++
			}
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// haproxyLogSample is real haproxy 2.6 output (RFC 5424 log lines and their stderr copies) from the tests above,
// plus a SOCKERR check.
const haproxyLogSample = `[WARNING]  (24715) : Health check for server be/s0 succeeded, reason: Layer7 check passed, code: 0, info: "5.5.5-10.11.19-MariaDB-0+deb12u1", check duration: 1ms, status: 3/3 UP.
<133>1 2026-11-22T01:13:56.178544+00:00 - haproxy 24715 - - Health check for server be/s0 succeeded, reason: Layer7 check passed, code: 0, info: "5.5.5-10.11.19-MariaDB-0+deb12u1", check duration: 1ms, status: 3/3 UP.
<134>1 2026-11-22T01:13:56.283442+00:00 - haproxy 24715 - - 198.18.0.2:57126 [22/Nov/2026:01:13:56.283] fe be/s0 1/0/0 171 -- 1/1/0/0/0 0/0
Connect() failed for backend be: no free ports.
<131>1 2026-11-22T01:13:58.655350+00:00 - haproxy 24715 - - Connect() failed for backend be: no free ports.
<134>1 2026-11-22T01:13:58.655500+00:00 - haproxy 24715 - - 198.18.0.2:42044 [22/Nov/2026:01:13:58.655] fe be/s0 1/-1/0 0 SC 1/1/0/0/3 0/0
<133>1 2026-11-22T01:13:59.270352+00:00 - haproxy 24715 - - Health check for server be/s0 failed, reason: Layer4 connection problem, info: "Out of local source ports on the system (Cannot assign requested address)", check duration: 0ms, status: 2/3 UP.
<133>1 2026-11-22T01:13:59.470352+00:00 - haproxy 24715 - - Health check for server be/s1 failed, reason: Socket error, info: "cannot create socket", check duration: 0ms, status: 0/2 DOWN.
[WARNING]  (24715) : Server be/s0 is DOWN. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.
<129>1 2026-11-22T01:13:59.672617+00:00 - haproxy 24715 - - Server be/s0 is DOWN. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.
<128>1 2026-11-22T01:13:59.672625+00:00 - haproxy 24715 - - backend be has no server available!
<134>1 2026-11-22T01:13:59.700000+00:00 - haproxy 24715 - - 198.18.0.2:46226 [22/Nov/2026:01:13:59.699] fe be/<NOSRV> -1/-1/0 0 SC 1/1/0/0/0 0/0
`

func TestParseHAProxyLog(t *testing.T) {
	l, err := ParseHAProxyLog(strings.NewReader(haproxyLogSample))
	if err != nil {
		t.Fatal(err)
	}
	want := map[HAProxyEventKind]int{EventCheckPassed: 1, EventConn: 1, EventConnectError: 1, EventConnFailed: 2,
		EventCheckFailed: 2, EventServerDown: 1}
	if got := counts(l); !maps.Equal(got, want) || l.Lines != 12 || !l.Syslog {
		t.Errorf("counts %v (%d lines, syslog %v), want %v (stderr copies skipped)", got, l.Lines, l.Syslog, want)
	}
	if got := l.ByStatus(EventCheckFailed); !maps.Equal(got, map[string]int{"L4CON": 1, "SOCKERR": 1}) {
		t.Errorf("failed checks by status %v", got)
	}
	if ev, _ := l.First(EventConnFailed); ev.Status != "SC" || ev.Server != "be/s0" || l.ByStatus(EventConnFailed)["SC"] != 2 {
		t.Errorf("failed connections %+v, by state %v", ev, l.ByStatus(EventConnFailed))
	}
	if ev, _ := l.First(EventCheckFailed); ev.Info != "Out of local source ports on the system (Cannot assign requested address)" {
		t.Errorf("check info %q", ev.Info)
	}
	if s0, s1 := l.ServerState("be/s0"), l.ServerState("be/s1"); s0 != "DOWN" || s1 != "DOWN" {
		t.Errorf("states %s %s, want DOWN DOWN", s0, s1)
	}
	epoch := time.Date(2026, 11, 22, 1, 13, 56, 0, time.UTC)
	if got := l.Series(EventCheckFailed, epoch, time.Second); !slices.Equal(got, []int{0, 0, 0, 2}) {
		t.Errorf("check failures per second %v", got)
	}
}

// TestParseHAProxyLogRaw reads the default raw log: haproxy's stderr and raw log lines count, without times
// except a connection line's accept date.
func TestParseHAProxyLogRaw(t *testing.T) {
	raw := `[WARNING]  (1) : Server be/s0 is DOWN, reason: Layer4 connection problem, info: "Connection refused", check duration: 0ms. 0 active and 0 backup servers left.
[WARNING]  (1) : Server be/s0 is UP, reason: Layer7 check passed, code: 0, check duration: 1ms. 1 active and 0 backup servers online.
198.18.0.2:42044 [22/Nov/2026:01:13:58.655] fe be/s0 1/-1/0 0 SC 1/1/0/0/3 0/0
Connect() failed for backend be: local address already in use.
`
	l, err := ParseHAProxyLog(strings.NewReader(raw))
	if err != nil || l.Syslog {
		t.Fatal(l, err)
	}
	want := map[HAProxyEventKind]int{EventServerDown: 1, EventServerUp: 1, EventConnFailed: 1, EventConnectError: 1}
	if got := counts(l); !maps.Equal(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
	if ev, _ := l.First(EventServerDown); ev.Status != "L4CON" || ev.Info != "Connection refused" || !ev.Time.IsZero() {
		t.Errorf("down %+v", ev)
	}
	if ev, _ := l.First(EventConnFailed); ev.Time.Minute() != 13 || ev.Time.Nanosecond() != 655e6 {
		t.Errorf("accept date %v", ev.Time)
	}
	if ev, _ := l.First(EventConnectError); ev.Info != "local address already in use" {
		t.Errorf("connect error %+v", ev)
	}
	if l.ServerState("be/s0") != "UP" {
		t.Errorf("state %q", l.ServerState("be/s0"))
	}
}
