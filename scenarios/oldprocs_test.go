package scenarios

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/runner"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/results"
	"github.com/faultlab/faultlab/results/analyses"
)

// TestOldProcs runs real HAProxy under a slow reload storm with long-lived clients that never answer a FIN
// (pathology 2, seeds/000; docs/oldprocs.md) and checks, per cell, what the mechanism makes certain. Every
// expected time comes from the cell's own configuration (hard-stop-after, timeout client-fin, timeout client,
// mworker-max-reloads, tcp_fin_timeout), never from a measured number:
//   - the condition happened: at least 3 reloads, every client connected, and clients in at least 2
//     generations that became old (else the cell's claims are void, and the test says so);
//   - without a knob that ends old sessions, each old process lives as long as its clients: between reloads the
//     old processes are exactly the generations that still hold a client (a client that connected during a
//     reload may belong to either side, hence bounds);
//   - each knob bounds them: hard-stop-after H (none left H after a reload), timeout client-fin CF (sessions
//     half-closed by the server end CF later), timeout client T (idle sessions end T after the connect), the
//     soft-stop's close of idle HTTP keep-alive connections, mworker-max-reloads N (at most N old workers);
//   - what the clients lose: when they are cut (H after the reload, T after the connect, N reloads later, at
//     the soft stop) and that all are;
//   - the proxy's half-closed sockets: toward the clients, FIN_WAIT2 from the FIN it sent until the client
//     closes, or until tcp_fin_timeout after the proxy released the socket; toward the servers, CLOSE_WAIT
//     from the server's FIN until the proxy ends the session. The counts sampled on the proxy must match those
//     predicted from the clients' times at every sample (slack: 250 ms each side of an event).
func TestOldProcs(t *testing.T) {
	runOldProcs(t, "oldprocs.yaml")
}

// TestOldProcsIdle: the same storm with well-behaved idle clients, which close as soon as the proxy's FIN
// comes. The same claims hold (the cut clients release their sockets at once, so no FIN_WAIT2 is predicted
// on the proxy beyond the 250 ms slack); how many TIME_WAITs the proxy keeps instead is logged.
func TestOldProcsIdle(t *testing.T) {
	runOldProcs(t, "oldprocs-idle.yaml")
}

// TestOldProcsTengine: Tengine's stream proxy under the same kind of storm (shorter cells), with and without
// worker_shutdown_timeout, the comparison row of hard-stop-after. The same claims, with Tengine's knobs: without
// the timeout the old workers are exactly the generations still holding a client; with it none is left past
// the timeout and every client of an old worker is cut then.
func TestOldProcsTengine(t *testing.T) {
	runOldProcs(t, "oldprocs-tengine.yaml")
}

// TestOldProcsServer: the seed's pairs (FIN_WAIT2 toward the client, CLOSE_WAIT toward the server) with a
// server that closes and with one that half-closes (nginx's lingering_close always), the backend's orphans
// lasting 3 s (tcp_fin_timeout). The proxy cannot tell them apart: the same claims hold in both cells, with the
// same CLOSE_WAIT toward the server until each client leaves. The difference is on the server: the closing
// nginx's socket is an orphan, gone tcp_fin_timeout after its FIN, so the proxy's FIN, sent when the client
// leaves, gets a reset from the server's kernel; the half-closing nginx still holds its socket (it reads for
// lingering_timeout) and the proxy's FIN closes it in order: no reset at all from the server.
func TestOldProcsServer(t *testing.T) {
	rep := runOldProcs(t, "oldprocs-server.yaml")
	if rep == nil {
		return
	}
	for _, c := range rep.Cells {
		t.Run(c.Name+"/server", func(t *testing.T) { checkServerResets(t, &c) })
	}
}

// checkServerResets compares the server host's resets sent (Tcp.OutRsts over the load) with what nginx's
// close mode predicts for the clients' times.
func checkServerResets(t *testing.T, c *results.CellReport) {
	t.Helper()
	r := oldprocsOf(t, c)
	var kernel map[string]map[string]int64
	if err := c.Analysis("kernel", 0, &kernel); err != nil {
		t.Fatal(err)
	}
	s, err := spec.Load("oldprocs-server.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var web spec.Service
	var finTimeout time.Duration
	for _, cell := range spec.Expand(s, longMode()) {
		if cell.Name != c.Name {
			continue
		}
		for _, sv := range cell.Scenario.Services {
			if sv.Name == "web" {
				web = sv
			}
		}
		for _, h := range cell.Scenario.Hosts {
			if h.Name == web.Host {
				n, err := strconv.Atoi(h.Sysctls["net.ipv4.tcp_fin_timeout"])
				if err != nil {
					t.Fatalf("host %s: tcp_fin_timeout: %v", h.Name, err)
				}
				finTimeout = time.Duration(n) * time.Second
			}
		}
	}
	rsts := kernel[web.Host]["Tcp.OutRsts"]
	// The server's FIN comes at the client's cut (HAProxy forwards it within a millisecond); the proxy's FIN
	// reaches the server when the client releases its socket. The server's socket is gone finTimeout after
	// nginx closes it: at once for a closing server, after lingering_timeout (nginx's default 5 s) without data
	// for a half-closing one. A FIN after that gets a reset. The last client's reset may come after the
	// counters were read, so it is not counted on.
	orphanAfter := time.Duration(0)
	lingering := web.Options["lingering_close"] == "always"
	if lingering {
		orphanAfter = 5 * time.Second
		if v, ok := web.Options["lingering_timeout"]; ok {
			if orphanAfter, err = time.ParseDuration(v); err != nil {
				t.Fatal(err)
			}
		}
	}
	const slack = 250 * time.Millisecond
	last, held, sure, maybe := time.Duration(0), 0, 0, 0
	for _, ct := range r.Clients.Times {
		last = max(last, ct.Released)
	}
	for _, ct := range r.Clients.Times {
		if ct.Cut == 0 {
			continue
		}
		gone := ct.Cut + orphanAfter + finTimeout
		if ct.Released-ct.Cut > finTimeout+slack {
			held++
		}
		if ct.Released > gone+slack && ct.Released < last-slack {
			sure++
		}
		if ct.Released > gone-slack {
			maybe++
		}
	}
	t.Logf("server %s: lingering_close %q, tcp_fin_timeout %s: %d resets sent; %d clients left after the "+
		"server's socket was surely gone, %d maybe", web.Host, web.Options["lingering_close"], finTimeout, rsts,
		sure, maybe)
	if held < 5 {
		t.Fatalf("void: only %d clients left more than tcp_fin_timeout %s after the server's FIN", held, finTimeout)
	}
	if rsts < int64(sure) {
		t.Errorf("the server sent %d resets, want at least %d: one per proxy FIN that came after its socket "+
			"was gone", rsts, sure)
	}
	if maybe == 0 && rsts != 0 {
		t.Errorf("the server sent %d resets, want none: it held every socket until the proxy's FIN", rsts)
	}
	if !lingering && sure < 5 {
		t.Errorf("void: only %d clients left surely after the closing server's orphan expired", sure)
	}
}

// TestOldProcsKeepAlive: HTTP keep-alive clients idle after one request, which close as soon as the proxy's
// FIN comes, behind HAProxy in HTTP mode (legacy and master-worker reloads). The claims of TestOldProcs's
// http-keepalive cell hold: the soft stop closes the idle connections at once (every client of an old
// process cut within 500 ms of its reload) and no old process outlives that. Long mode only (the quick
// budget of `go test ./scenarios -run OldProcs` is 5 minutes).
func TestOldProcsKeepAlive(t *testing.T) {
	if !longMode() {
		t.Skip("long mode only (FAULTLAB_LONG=1): keeps the quick OldProcs tests under 5 minutes")
	}
	runOldProcs(t, "oldprocs-keepalive.yaml")
}

// TestOldProcsHalfClose: clients that send their FIN first and read until the peer's, behind HAProxy in TCP
// mode with one-day timeouts. nginx answers a FIN on an idle connection (or has closed already after a
// request), so every client gets the peer's FIN within 250 ms of its connect, and no old process is left
// past a reload's settling time: a half-closing client does not keep an old process alive when its server
// answers. Long mode only, as TestOldProcsKeepAlive.
func TestOldProcsHalfClose(t *testing.T) {
	if !longMode() {
		t.Skip("long mode only (FAULTLAB_LONG=1): keeps the quick OldProcs tests under 5 minutes")
	}
	rep := runScenario(t, "oldprocs-halfclose.yaml", backend())
	if rep == nil {
		return
	}
	for _, c := range rep.Cells {
		t.Run(c.Name+"/mechanism", func(t *testing.T) { checkHalfCloseAnswered(t, oldprocsOf(t, &c)) })
	}
}

// checkHalfCloseAnswered: every half-closing client got the peer's FIN promptly, and no old process lasted.
func checkHalfCloseAnswered(t *testing.T, r *analyses.OldProcsResult) {
	t.Helper()
	const prompt, settle = 250 * time.Millisecond, time.Second
	cl := r.Clients
	if r.Reloads < 3 || cl.Attempts < 10 || cl.Connected != cl.Attempts {
		t.Fatalf("void: %d reloads, %d of %d clients connected (want >= 3 reloads, every client connected)",
			r.Reloads, cl.Connected, cl.Attempts)
	}
	if cl.Held != cl.Connected {
		t.Errorf("%d of %d clients got the peer's FIN before their hold ended, want all", cl.Held, cl.Connected)
	}
	for _, c := range cl.Times {
		if c.Released-c.Connect > prompt {
			t.Errorf("a client connected at %s got the peer's FIN %s later, want within %s", c.Connect,
				c.Released-c.Connect, prompt)
		}
	}
	checked := 0
	for _, p := range r.Procs {
		if p.SinceReload < settle {
			continue
		}
		checked++
		if p.Old != 0 {
			t.Errorf("at %s, %s after a reload: %d old processes, want none", p.T, p.SinceReload, p.Old)
		}
	}
	if checked < 5 {
		t.Errorf("only %d process samples far enough from a reload to judge", checked)
	}
}

// runOldProcs runs a scenario file of the family and checks every cell's mechanism (checkOldProcsReport); it
// returns the report, nil when the run did not complete.
func runOldProcs(t *testing.T, file string) *results.Report {
	t.Helper()
	rep := runScenario(t, file, backend())
	if rep != nil {
		checkOldProcsReport(t, rep, file)
	}
	return rep
}

// oldprocsOf reads a cell's oldprocs analysis and logs its summary.
func oldprocsOf(t *testing.T, c *results.CellReport) *analyses.OldProcsResult {
	t.Helper()
	var r analyses.OldProcsResult
	if err := c.Analysis(analyses.OldProcs.Name, 0, &r); err != nil {
		t.Fatal(err)
	}
	t.Log(r.String())
	return &r
}

func checkOldProcsReport(t *testing.T, rep *results.Report, file string) {
	s, err := spec.Load(file)
	if err == nil {
		err = spec.Check(s, runner.Vocabulary()) // fills in what the matrix rows' replacements are
	}
	if err != nil {
		t.Fatal(err)
	}
	knobs := map[string]oldprocsKnobs{}
	for _, c := range spec.Expand(s, longMode()) {
		if knobs[c.Name], err = knobsOf(&c); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range rep.Cells {
		t.Run(c.Name+"/mechanism", func(t *testing.T) {
			r, k := oldprocsOf(t, &c), knobs[c.Name]
			checkOldProcsPremise(t, r)
			checkOldProcesses(t, r, k)
			checkCuts(t, r, k)
			checkHalfClosed(t, r, k)
		})
	}
}

// oldprocsKnobs is what a cell's configuration says about how long sessions and sockets live.
type oldprocsKnobs struct {
	// hardStop is HAProxy's hard-stop-after or Tengine's worker_shutdown_timeout: how long an old process
	// may keep its sessions after a reload
	hardStop, clientFin, clientTimeout time.Duration
	hold                               time.Duration // how long each client means to hold its connection
	maxReloads                         int
	finTimeout                         time.Duration // the proxy's tcp_fin_timeout
	serverCloses                       bool          // tcp mode with a request: nginx answers and closes
	kind                               string        // the workload: nofin keeps its socket after a FIN
	httpMode                           bool
	interval                           time.Duration
}

func knobsOf(c *spec.Cell) (oldprocsKnobs, error) {
	s := &c.Scenario
	k := oldprocsKnobs{finTimeout: 60 * time.Second, interval: s.Reload.Interval} // Linux's TCP_FIN_TIMEOUT
	var lb *spec.Service
	for i := range s.Services {
		if s.Services[i].Name == s.Reload.Service {
			lb = &s.Services[i]
		}
	}
	k.httpMode, k.kind = lb.Mode == "http", s.Workload.Kind
	k.serverCloses = !k.httpMode && s.Workload.Options["request"] == "http"
	k.hold = s.Workload.Timeout
	var err error
	if v, ok := s.Workload.Options["hold"]; ok {
		if k.hold, err = time.ParseDuration(v); err != nil {
			return k, err
		}
	}
	if lb.Kind == "tengine" {
		// the stream proxy's proxy_timeout is nginx's default, 10 minutes: the driver does not set it
		k.clientTimeout = 10 * time.Minute
		if v, ok := lb.Options["worker_shutdown_timeout"]; ok {
			k.hardStop, err = time.ParseDuration(v)
		}
		return k, err
	}
	if k.clientTimeout, err = haproxyTime(lb.Options["timeout_client"]); err != nil {
		return k, err
	}
	for _, line := range strings.Split(lb.Options["global"]+"\n"+lb.Options["defaults"], "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "hard-stop-after":
			k.hardStop, err = haproxyTime(f[1])
		case len(f) == 2 && f[0] == "mworker-max-reloads":
			k.maxReloads, err = strconv.Atoi(f[1])
		case len(f) == 3 && f[0] == "timeout" && f[1] == "client-fin":
			k.clientFin, err = haproxyTime(f[2])
		}
		if err != nil {
			return k, fmt.Errorf("cell %s: %q: %w", c.Name, line, err)
		}
	}
	for _, h := range s.Hosts {
		if v, ok := h.Sysctls["net.ipv4.tcp_fin_timeout"]; ok && h.Name == lb.Host {
			n, err := strconv.Atoi(v)
			if err != nil {
				return k, err
			}
			k.finTimeout = time.Duration(n) * time.Second
		}
	}
	return k, nil
}

// haproxyTime parses a haproxy time (a number with an optional unit, milliseconds by default).
func haproxyTime(v string) (time.Duration, error) {
	i := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(v)
	}
	n, err := strconv.Atoi(v[:i])
	if err != nil {
		return 0, fmt.Errorf("haproxy time %q: %w", v, err)
	}
	unit := map[string]time.Duration{"": time.Millisecond, "us": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[v[i:]]
	if unit == 0 {
		return 0, fmt.Errorf("haproxy time %q: unknown unit", v)
	}
	return time.Duration(n) * unit, nil
}

// checkOldProcsPremise: the claims are void unless reloads happened while clients were connected: at least
// two generations became old while one of their clients still held its connection.
func checkOldProcsPremise(t *testing.T, r *analyses.OldProcsResult) {
	t.Helper()
	gens := map[int]bool{}
	for _, c := range r.Clients.Times {
		g := 0 // the generation the client connected to (reloads started before its connect)
		for g < len(r.ReloadStarts) && r.ReloadStarts[g] < c.Connect {
			g++
		}
		if g < len(r.ReloadStarts) && r.ReloadStarts[g] < c.Released {
			gens[g] = true
		}
	}
	if r.Reloads < 3 || r.Clients.Attempts < 10 || r.Clients.Connected != r.Clients.Attempts || len(gens) < 2 {
		t.Fatalf("void: %d reloads, %d of %d clients connected, %d generations became old with a client "+
			"connected (want >= 3 reloads, every client connected, >= 2 generations)", r.Reloads,
			r.Clients.Connected, r.Clients.Attempts, len(gens))
	}
}

// timeoutCuts reports whether the proxy's inactivity timeout ends an idle session before its client leaves.
func (k oldprocsKnobs) timeoutCuts() bool { return k.clientTimeout < k.hold }

// sessionBound is how long after a reload the old process's sessions surely end, 0 when nothing ends them
// before their clients leave.
func (k oldprocsKnobs) sessionBound() time.Duration {
	const settle = 500 * time.Millisecond
	switch {
	case k.hardStop > 0:
		return k.hardStop + settle
	case k.httpMode:
		return settle // idle keep-alive connections are closed at the soft stop
	case k.serverCloses && k.clientFin > 0 && k.clientFin < k.clientTimeout:
		return k.clientFin + settle
	case !k.serverCloses && k.timeoutCuts():
		return k.clientTimeout + settle
	}
	return 0
}

func checkOldProcesses(t *testing.T, r *analyses.OldProcsResult, k oldprocsKnobs) {
	t.Helper()
	bound, checked := k.sessionBound(), 0
	for _, p := range r.Procs {
		if p.SinceReload < 0 || p.SinceReload < max(bound, time.Second) {
			continue // before the first reload, or while a reload's effects settle
		}
		checked++
		switch {
		case bound > 0 && p.Old != 0:
			t.Errorf("at %s, %s after a reload: %d old processes, want none past %s", p.T, p.SinceReload, p.Old, bound)
		case bound == 0 && k.maxReloads > 0 && p.Old > k.maxReloads:
			t.Errorf("at %s: %d old processes, over mworker-max-reloads %d", p.T, p.Old, k.maxReloads)
		case bound == 0 && k.maxReloads == 0 && (p.Old < p.OldLo || p.Old > p.OldHi):
			t.Errorf("at %s: %d old processes, want the %d-%d generations still holding a client", p.T, p.Old,
				p.OldLo, p.OldHi)
		}
	}
	if checked < 5 {
		t.Errorf("only %d process samples far enough from a reload to judge", checked)
	}
}

// checkCuts: who was cut, and when.
func checkCuts(t *testing.T, r *analyses.OldProcsResult, k oldprocsKnobs) {
	t.Helper()
	const late = 500 * time.Millisecond
	cl := r.Clients
	// HAProxy's timers count in milliseconds of its own clock, read when its poller wakes up: a timeout armed
	// at accept counts from that wake-up, which comes before the accept, so it can expire up to a tick early
	// as the client measures it (the long run saw a 2 s timeout cut a client 1.999994 s after its connect).
	const tick = time.Millisecond
	within := func(what string, ds []time.Duration, lo, hi time.Duration) {
		for _, d := range ds {
			if d < lo-tick || d > hi {
				t.Errorf("%s: a client cut %s after, want %s-%s", what, d, lo, hi)
			}
		}
	}
	allCut := k.hardStop > 0 || k.httpMode || k.serverCloses || k.maxReloads > 0 || k.timeoutCuts()
	if allCut && cl.Cut+cl.Reset != cl.Connected {
		t.Errorf("%d of %d clients cut or reset, want all", cl.Cut+cl.Reset, cl.Connected)
	}
	if !allCut && cl.Held != cl.Connected {
		t.Errorf("%d of %d clients held their connection to the end, want all: nothing ends an idle session",
			cl.Held, cl.Connected)
	}
	switch {
	case k.hardStop > 0:
		within("after the reload that made its process old (hard-stop-after)", cl.CutAfterOld, k.hardStop, k.hardStop+late)
	case k.httpMode:
		within("after the soft stop", cl.CutAfterOld, 0, late)
	case k.maxReloads > 0:
		n := time.Duration(k.maxReloads) * k.interval
		within("after its process became old (mworker-max-reloads)", cl.CutAfterOld, n-100*time.Millisecond, n+late)
	case k.serverCloses || k.timeoutCuts():
		after := k.clientTimeout
		if k.serverCloses {
			after = 0 // the server's FIN, forwarded at once
		}
		var ds []time.Duration
		for _, c := range cl.Times {
			ds = append(ds, c.Cut-c.Connect)
		}
		within("after its connect", ds, after, after+late)
	}
	if len(cl.CutAfterOld) == 0 && (k.hardStop > 0 || k.httpMode || k.maxReloads > 0) {
		t.Error("no cut client of a known generation to time")
	}
}

// checkHalfClosed compares the proxy's FIN_WAIT2 (client side) and CLOSE_WAIT (backend side) at every sample
// with the counts the clients' times predict.
func checkHalfClosed(t *testing.T, r *analyses.OldProcsResult, k oldprocsKnobs) {
	t.Helper()
	// how long the proxy keeps the session (and its FIN_WAIT2 socket) after its FIN to the client
	proxyKeeps := time.Duration(0)
	if k.serverCloses {
		proxyKeeps = k.clientTimeout
		if k.clientFin > 0 {
			proxyKeeps = k.clientFin
		}
	}
	fw2 := func(c span) span {
		return span{lo: c.lo, hi: min(c.hi, c.lo+proxyKeeps+k.finTimeout)}
	}
	cw := func(c span) span {
		if !k.serverCloses {
			return span{}
		}
		return span{lo: c.lo, hi: min(c.hi, c.lo+proxyKeeps)}
	}
	var cuts []span
	for _, c := range r.Clients.Times {
		if c.Cut > 0 {
			cuts = append(cuts, span{lo: c.Cut, hi: c.Released})
		}
	}
	fw2Seen := 0
	for _, p := range r.States {
		fw2Seen = max(fw2Seen, checkCount(t, p.T, "client-facing FIN_WAIT2", p.Client["fin_wait2"], cuts, fw2))
		checkCount(t, p.T, "backend-facing CLOSE_WAIT", p.Backend["close_wait"], cuts, cw)
	}
	if len(cuts) > 0 && k.kind == "nofin" && fw2Seen == 0 {
		t.Error("void: clients were cut but no sample fell surely inside a FIN_WAIT2's predicted life")
	}
	// Where a client that closes at once leaves the TIME_WAIT is logged, not asserted: in the first run 2 of
	// 18 hard-stopped connections left none on the proxy and the client sent 2 RSTs (docs/oldprocs.md).
	if k.kind == "idle" && len(r.States) > 0 {
		t.Logf("client-facing TIME_WAIT on the proxy at the last sample: %d, clients cut: %d",
			r.States[len(r.States)-1].Client["time_wait"], len(cuts))
	}
}

// span is a time interval [lo, hi) from the cell's start.
type span struct{ lo, hi time.Duration }

// checkCount checks a sampled count at t against the intervals life(cut) of the cut clients: at least those
// whose interval surely covers t, at most those that may (250 ms slack each side). It returns the former.
func checkCount(t *testing.T, at time.Duration, what string, got int, cuts []span,
	life func(span) span) int {
	t.Helper()
	const slack = 250 * time.Millisecond
	lo, hi := 0, 0
	for _, c := range cuts {
		l := life(c)
		if l.lo+slack <= at && at < l.hi-slack {
			lo++
		}
		if l.lo-slack <= at && at < l.hi+slack {
			hi++
		}
	}
	if got < lo || got > hi {
		t.Errorf("at %s: %d %s, predicted %d-%d from the clients", at, got, what, lo, hi)
	}
	return lo
}
