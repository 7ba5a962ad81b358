package analyses

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/results"
)

// OldProcs follows what soft reloads leave behind on a proxy (pathology 2, seeds/000, docs/oldprocs.md): the
// proxy's processes over time (how many old ones, their ages and memory) next to what long-lived clients
// predict, the proxy's sockets by state on each side (client-facing, backend-facing), and what the clients
// saw: connections cut (the peer's FIN) or reset, and when, relative to the reload that made their process
// old. It reads the procs series of the workload's target, the states series of its host, reloads.jsonl and
// records.jsonl.
var OldProcs = &Analyzer{Name: "oldprocs", Run: runOldProcs,
	Doc: "old proxy processes after reloads (count, ages, RSS) against what the clients predict, the " +
		"proxy's sockets by state per side, and the clients cut or reset"}

// OldProcsResult is the oldprocs analysis of one repetition of a cell.
type OldProcsResult struct {
	Service  string `json:"service"`
	Strategy string `json:"strategy"`
	// Reloads is the number of reloads that completed; ReloadStarts when each began.
	Reloads      int             `json:"reloads"`
	ReloadStarts []time.Duration `json:"reload_starts_ns"`
	// Hold is how long each client meant to keep its connection (the workload's hold, else its timeout).
	Hold time.Duration `json:"hold_ns"`
	// Procs is the process series: one point per procs sample.
	Procs []ProcPoint `json:"procs"`
	// States is the proxy host's socket series by side: one point per states sample.
	States []SidePoint `json:"states"`
	// Spans summarise States per side and state ("client/fin_wait2", "backend/close_wait", ...).
	Spans   map[string]StateSpan `json:"spans"`
	Old     OldSummary           `json:"old"`
	Clients ClientSummary        `json:"clients"`
}

// ProcPoint is the proxy's processes at one moment, and what the clients predict.
type ProcPoint struct {
	T time.Duration `json:"t_ns"`
	// Old is the number of processes besides the current one (master-worker and Tengine: besides the
	// master and the current worker).
	Old int `json:"old"`
	// OldLo and OldHi bound the old processes that still hold a connected client at T, if each old process
	// lives exactly as long as its clients do (long timeouts): Lo counts generations with a client surely
	// theirs, Hi adds those a client connected during a reload may belong to.
	OldLo int `json:"old_lo"`
	OldHi int `json:"old_hi"`
	// Connected is the number of clients holding their socket at T.
	Connected int `json:"connected"`
	// Reloads is the number of reloads started before T; SinceReload the time since the last one (-1: none).
	Reloads     int           `json:"reloads"`
	SinceReload time.Duration `json:"since_reload_ns"`
	OldestAge   time.Duration `json:"oldest_age_ns"`
	// OldRSS is the old processes' resident memory, summed, in bytes.
	OldRSS int64 `json:"old_rss_bytes"`
}

// SidePoint is the proxy host's TCP sockets at one moment, split by side: backend-facing are those whose
// local port is in the host's ephemeral range (the proxy's own connections to its servers), client-facing
// the others except listeners (the frontend's accepted connections).
type SidePoint struct {
	T       time.Duration  `json:"t_ns"`
	Client  map[string]int `json:"client"`
	Backend map[string]int `json:"backend"`
	// Orphans counts the host's full sockets no process holds (FIN_WAIT1, FIN_WAIT2, CLOSING, LAST_ACK
	// without an inode); an orphaned FIN_WAIT2 that became a minisocket counts as FIN_WAIT2 only.
	Orphans int `json:"orphans"`
}

// StateSpan is how one side's count of one state evolved: its peak, when it was first and last non-zero, its
// count at the last sample (non-zero: it outlived the series) and its area (socket-seconds).
type StateSpan struct {
	Peak   int           `json:"peak"`
	PeakAt time.Duration `json:"peak_at_ns"`
	First  time.Duration `json:"first_ns"`
	Last   time.Duration `json:"last_ns"`
	AtEnd  int           `json:"at_end"`
	Area   float64       `json:"socket_seconds"`
}

// OldSummary summarises the old processes.
type OldSummary struct {
	Peak         int           `json:"peak"`
	PeakRSS      int64         `json:"peak_rss_bytes"`
	MaxOldestAge time.Duration `json:"max_oldest_age_ns"`
	// OldFor lists, for each process seen to exit, how long it outlived the reload that made it old.
	OldFor []time.Duration `json:"old_for_ns"`
}

// ClientSummary is what the clients saw.
type ClientSummary struct {
	Attempts  int `json:"attempts"`
	Connected int `json:"connected"` // the connect succeeded
	Held      int `json:"held"`      // ok: the connection lasted the whole hold
	Cut       int `json:"cut"`       // closed: the peer's FIN came during the hold
	Reset     int `json:"reset"`
	Failed    int `json:"failed"` // any other failure
	// CutAfterOld lists, for each cut or reset client whose generation is known, the time from the reload
	// that made its process old to the cut; CutWhileCurrent counts those cut while their process was still
	// the current one (by a timeout or the server, not by a reload).
	CutAfterOld     []time.Duration `json:"cut_after_old_ns"`
	CutWhileCurrent int             `json:"cut_while_current"`
	// Times lists every connected client's times, to predict the proxy's socket counts from.
	Times []ClientTimes `json:"times"`
}

// ClientTimes is one connected client: when its connect completed, when the peer's FIN or reset came (0: never)
// and when it released its socket.
type ClientTimes struct {
	Connect  time.Duration `json:"connect_ns"`
	Cut      time.Duration `json:"cut_ns,omitempty"`
	Released time.Duration `json:"released_ns"`
}

func runOldProcs(in *Input) (Output, error) {
	s := &in.Cell.Scenario
	target := serviceNamed(s, s.Workload.Target)
	if target == nil || !target.IsProxy() {
		return Output{}, fmt.Errorf("workload target %q is not a proxy", s.Workload.Target)
	}
	hold, err := workloadHold(s.Workload)
	if err != nil {
		return Output{}, err
	}
	rels, err := results.ReadReloads(filepath.Join(in.Dir, "reloads.jsonl"))
	if err != nil {
		rels = nil // a cell without a storm has no reloads file
	}
	rels = slices.DeleteFunc(rels, func(r results.ReloadEvent) bool { return !r.OK })
	slices.SortFunc(rels, func(a, b results.ReloadEvent) int { return cmp.Compare(a.Start, b.Start) })
	cls, err := readClients(in.Dir, s.Workload.Kind, hold, rels)
	if err != nil {
		return Output{}, err
	}
	r := &OldProcsResult{Service: target.Name, Strategy: target.Reload, Reloads: len(rels), Hold: hold,
		ReloadStarts: []time.Duration{}}
	for _, e := range rels {
		r.ReloadStarts = append(r.ReloadStarts, time.Duration(e.Start))
	}
	if err := r.readProcs(filepath.Join(in.Dir, "procs-"+target.Name+".jsonl"), hasMaster(target), rels, cls); err != nil {
		return Output{}, err
	}
	if err := r.readSides(filepath.Join(in.Dir, "states-"+target.Host+".jsonl"), target.Port); err != nil {
		return Output{}, err
	}
	r.Clients = summariseClients(cls, rels)
	return Output{Value: r, Summary: r.String(), Columns: r.columns()}, nil
}

// hasMaster reports whether the proxy runs a master process that outlives reloads, besides its workers:
// HAProxy in master-worker mode, and Tengine (an nginx-style master that starts new workers on a reload).
func hasMaster(s *spec.Service) bool {
	return s.Reload == "master-worker" || s.Kind == "tengine"
}

func serviceNamed(s *spec.Scenario, name string) *spec.Service {
	for i := range s.Services {
		if s.Services[i].Name == name {
			return &s.Services[i]
		}
	}
	return nil
}

// workloadHold is how long the workload's clients hold their connection: option hold, else the timeout.
func workloadHold(w spec.Workload) (time.Duration, error) {
	v, ok := w.Options["hold"]
	if !ok {
		return w.Timeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("workload option hold %q: %w", v, err)
	}
	return d, nil
}

// String is the analysis's one-line summary.
func (r *OldProcsResult) String() string {
	return fmt.Sprintf("%d reloads: old processes peak %d (RSS %.1f MB), clients %d held / %d cut / %d reset; "+
		"peaks client FIN_WAIT2 %d, backend CLOSE_WAIT %d", r.Reloads, r.Old.Peak, float64(r.Old.PeakRSS)/1e6,
		r.Clients.Held, r.Clients.Cut, r.Clients.Reset, r.Spans["client/fin_wait2"].Peak,
		r.Spans["backend/close_wait"].Peak)
}

func (r *OldProcsResult) columns() []results.Column {
	fw2, cw := r.Spans["client/fin_wait2"], r.Spans["backend/close_wait"]
	return []results.Column{
		{Name: "old procs peak", Value: fmt.Sprint(r.Old.Peak)},
		{Name: "old RSS peak MB", Value: fmt.Sprintf("%.1f", float64(r.Old.PeakRSS)/1e6)},
		{Name: "clients held/cut/reset", Value: fmt.Sprintf("%d/%d/%d", r.Clients.Held, r.Clients.Cut, r.Clients.Reset)},
		{Name: "cut after old (median)", Value: fmtDur(median(r.Clients.CutAfterOld))},
		{Name: "client FW2 peak/end", Value: fmt.Sprintf("%d/%d", fw2.Peak, fw2.AtEnd)},
		{Name: "backend CW peak/end", Value: fmt.Sprintf("%d/%d", cw.Peak, cw.AtEnd)},
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	s := slices.Sorted(slices.Values(ds))
	return s[len(s)/2]
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "–"
	}
	return d.Round(10 * time.Millisecond).String()
}
