package analyses

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/results"
)

// oldprocsInput is a cell of testdata/oldprocs: files recorded by a real run (HAProxy 2.6 in tcp mode, legacy
// reloads every 3 s, 16 nofin clients connecting at 2/s for 8 s and holding 16 s).
func oldprocsInput(cell string, global string) *Input {
	opts := map[string]string{"timeout_client": "1d", "timeout_server": "1d"}
	if global != "" {
		opts["global"] = global
	}
	return &Input{Dir: filepath.Join("testdata", "oldprocs", cell), Cell: spec.Cell{Scenario: spec.Scenario{
		Workload: spec.Workload{Kind: "nofin", From: "client", Target: "lb", Timeout: 16 * time.Second},
		Services: []spec.Service{{Name: "web", Kind: "nginx", Host: "backend", Port: 80},
			{Name: "lb", Kind: "haproxy", Host: "proxy", Port: 80, Mode: "tcp", Backends: []string{"web"},
				Reload: "legacy", Proxy: true, Options: opts}}}}}
}

func runOldProcsOn(t *testing.T, in *Input) *OldProcsResult {
	t.Helper()
	o, err := runOldProcs(in)
	if err != nil {
		t.Fatal(err)
	}
	r := o.Value.(*OldProcsResult)
	t.Log(o.Summary)
	return r
}

// TestOldProcsLongTimeouts: with timeout client 1d every generation that accepted a client stays alive while
// its clients do: the old processes sit between the predicted bounds once a reload has settled.
func TestOldProcsLongTimeouts(t *testing.T) {
	r := runOldProcsOn(t, oldprocsInput("tcp-idle-1d", ""))
	if r.Reloads != 7 || r.Clients.Attempts != 16 || r.Clients.Held != 16 || r.Old.Peak != 3 {
		t.Fatalf("reloads %d, clients %+v, old peak %d", r.Reloads, r.Clients, r.Old.Peak)
	}
	checked := 0
	for _, p := range r.Procs {
		if p.SinceReload >= 0 && p.SinceReload < time.Second {
			continue // the reload's own transition
		}
		checked++
		if p.Old < p.OldLo || p.Old > p.OldHi {
			t.Errorf("at %s: %d old processes, predicted %d-%d", p.T, p.Old, p.OldLo, p.OldHi)
		}
	}
	if checked < 20 {
		t.Errorf("only %d samples checked", checked)
	}
	if s := r.Spans["client/established"]; s.Peak != 16 {
		t.Errorf("client-facing ESTABLISHED peak %d, want the 16 clients", s.Peak)
	}
	if s := r.Spans["backend/established"]; s.Peak != 16 {
		t.Errorf("backend-facing ESTABLISHED peak %d, want one per client", s.Peak)
	}
}

// TestOldProcsHardStop: hard-stop-after 1s ends each old process a second after its reload and cuts its
// clients then; the nofin clients leave the proxy's side in FIN_WAIT2 (orphaned: its process is gone).
func TestOldProcsHardStop(t *testing.T) {
	r := runOldProcsOn(t, oldprocsInput("tcp-nofin-hardstop", "hard-stop-after 1s"))
	if r.Clients.Cut != 16 || len(r.Clients.CutAfterOld) < 10 {
		t.Fatalf("clients %+v", r.Clients)
	}
	for _, d := range r.Clients.CutAfterOld {
		if d < time.Second || d > 1500*time.Millisecond {
			t.Errorf("cut %s after its reload, want hard-stop-after (1 s) plus a little", d)
		}
	}
	// the generations with clients live until the hard stop; those without exit at once
	if n := len(r.Old.OldFor); r.Old.Peak != 1 || n == 0 || r.Old.OldFor[n-1] < time.Second ||
		r.Old.OldFor[n-1] > 1600*time.Millisecond || r.Old.OldFor[0] <= 0 {
		t.Errorf("old processes peak %d, lived after their reload %v", r.Old.Peak, r.Old.OldFor)
	}
	if s := r.Spans["client/fin_wait2"]; s.Peak != 16 {
		t.Errorf("client-facing FIN_WAIT2 peak %d, want the 16 cut clients", s.Peak)
	}
}

// TestOldProcsPairs: a nofin client whose request the server answers and closes leaves the seed's pair on the
// proxy: FIN_WAIT2 toward the client, CLOSE_WAIT toward the server, one pair per client.
func TestOldProcsPairs(t *testing.T) {
	r := runOldProcsOn(t, oldprocsInput("tcp-nofin-req-1d", ""))
	fw2, cw := r.Spans["client/fin_wait2"], r.Spans["backend/close_wait"]
	if fw2.Peak != 16 || cw.Peak != 16 || r.Spans["client/close_wait"].Peak != 0 || r.Spans["backend/fin_wait2"].Peak != 0 {
		t.Errorf("spans %+v", r.Spans)
	}
	if r.Clients.Cut != 16 || r.Clients.CutWhileCurrent < 12 || len(r.Clients.CutAfterOld) != 0 {
		t.Errorf("clients %+v: the server's close reached each client while its process was current", r.Clients)
	}
}

func TestOldProcsErrors(t *testing.T) {
	in := oldprocsInput("tcp-idle-1d", "")
	in.Cell.Scenario.Services[1].Port = 40000 // inside the ephemeral range
	if _, err := runOldProcs(in); err == nil || !strings.Contains(err.Error(), "sides cannot be told apart") {
		t.Errorf("frontend port in the ephemeral range: %v", err)
	}
	in = oldprocsInput("tcp-idle-1d", "")
	in.Cell.Scenario.Workload.Target = "web"
	if _, err := runOldProcs(in); err == nil || !strings.Contains(err.Error(), "not a proxy") {
		t.Errorf("target not a proxy: %v", err)
	}
	in = oldprocsInput("tcp-idle-1d", "")
	in.Dir = t.TempDir()
	os.WriteFile(filepath.Join(in.Dir, "records.jsonl"), nil, 0o644)
	if _, err := runOldProcs(in); err == nil || !strings.Contains(err.Error(), "procs-lb.jsonl") {
		t.Errorf("no procs series: %v", err)
	}
}

func TestGeneration(t *testing.T) {
	s := time.Second
	rels := []results.ReloadEvent{{Start: int64(3 * s), End: int64(3*s + s/10)}, {Start: int64(6 * s), End: int64(6*s + s/10)}}
	for _, tt := range []struct {
		t      time.Duration
		lo, hi int
	}{{s, 0, 0}, {3 * s, 0, 1}, {3*s + 250*time.Millisecond, 0, 1}, {3*s + 400*time.Millisecond, 1, 1}, {7 * s, 2, 2}} {
		if lo, hi := generation(tt.t, rels); lo != tt.lo || hi != tt.hi {
			t.Errorf("generation(%s) = %d-%d, want %d-%d", tt.t, lo, hi, tt.lo, tt.hi)
		}
	}
}

// TestProcPoint: the old processes of a sample, oldest first: legacy skips the current (youngest) process,
// master-worker the master (oldest) and the current worker too.
func TestProcPoint(t *testing.T) {
	s := time.Second
	pids := []pidSample{{PID: 1, Age: 20 * s, RSS: 100}, {PID: 2, Age: 9 * s, RSS: 10}, {PID: 3, Age: 5 * s, RSS: 20},
		{PID: 4, Age: s, RSS: 40}}
	rels := []results.ReloadEvent{{Start: int64(3 * s)}, {Start: int64(7 * s)}}
	tests := []struct {
		name      string
		skip      int
		old       int
		rss       int64
		oldestAge time.Duration
	}{{"legacy", 1, 3, 130, 20 * s}, {"master-worker", 2, 2, 30, 9 * s}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := procPoint(8*s, pids, tt.skip, rels, nil)
			if p.Old != tt.old || p.OldRSS != tt.rss || p.OldestAge != tt.oldestAge || p.Reloads != 2 ||
				p.SinceReload != s {
				t.Errorf("%+v", p)
			}
		})
	}
}

// TestHasMaster: which proxies keep a master beside their workers across reloads.
func TestHasMaster(t *testing.T) {
	for _, tt := range []struct {
		kind, reload string
		want         bool
	}{{"haproxy", "legacy", false}, {"haproxy", "socket-transfer", false}, {"haproxy", "master-worker", true},
		{"tengine", "reload", true}} {
		if got := hasMaster(&spec.Service{Kind: tt.kind, Reload: tt.reload}); got != tt.want {
			t.Errorf("%s %s: %v, want %v", tt.kind, tt.reload, got, tt.want)
		}
	}
}
