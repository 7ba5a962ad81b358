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
	sf, err := harness.NewSocketFactory(client.NetnsPath())
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	recs := make([]results.Record, n)
	var mu sync.Mutex
	cfg := loadgen.Config{Cell: t.Name(), Rate: rate, Duration: time.Duration(float64(n) / rate * float64(time.Second)),
		Timeout: 5 * time.Second, Target: dst}
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
	return recs
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

// TestHAProxySourcePortExhaustion: 1500 short MySQL connections at 500/s through haproxy whose host has 1000
// source ports (ip_local_port_range 40000 40999) and checks MariaDB every 200 ms. haproxy mostly closes first
// toward MariaDB (the client sends COM_QUIT and closes; MariaDB sometimes closes first on COM_QUIT), so most
// connections leave a TIME_WAIT on the proxy for 60 s: after about 1000 connections connect() fails with
// EADDRNOTAVAIL. Two source addresses, tcp_tw_reuse=1, or 4 persistent client connections avoid it.
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
	}{
		{"one_source", "proxy", "", 0, true},
		{"two_sources", "proxy2", p2[0].String() + "," + p2[1].String(), 0, false},
		{"tw_reuse", "proxyreuse", "", 0, false},
		{"persistent", "proxypersist", "", 4, false},
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
			recs := runMySQL(t, lab["client"], at(h, 3306), w, 1500, 500)
			if err := p.Close(context.Background()); err != nil {
				t.Error(err)
			}
			tw := timeWaitTo(t, h, db.Addr())
			conns := 1500
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
		})
	}
}

// checkExhausted checks how source port exhaustion shows: at the client, haproxy accepts, then closes without a
// greeting; in haproxy's log, "Connect() failed ... no free ports", connection lines with state SC and no
// server connect time, health checks failing with EADDRNOTAVAIL.
func checkExhausted(t *testing.T, recs []results.Record, first int, failures map[string]int, tw map[netip.Addr]int,
	l *HAProxyLog) {
	t.Helper()
	if first < 900 || first > 1400 {
		t.Errorf("first failure at attempt %d, want about 1000 (1000 ports, less the health checks, more the "+
			"connections MariaDB closed first)", first)
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
