package analyses

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/faultlab/faultlab/results"
)

// reloadSlack is how long after a reload's end a new connection may still reach the old process (it closes
// its listener once signalled): a client that connected from a reload's start until then is of either
// generation.
const reloadSlack = 200 * time.Millisecond

// client is one attempt of a holding workload.
type client struct {
	connected  bool
	connect    time.Duration // when the connect completed
	end        time.Duration // when the client released its socket
	cutAt      time.Duration // when the FIN or the reset came (closed, reset outcomes)
	outcome    results.Outcome
	genLo, gen int // the generation (process) it connected to: genLo < gen when a reload makes it unsure
}

// readClients reads the records; a nofin client keeps its socket until the hold's end whatever the peer did.
func readClients(dir, kind string, hold time.Duration, rels []results.ReloadEvent) ([]client, error) {
	var cls []client
	err := results.ReadRecords(filepath.Join(dir, "records.jsonl"), func(r *results.Record) error {
		c := client{outcome: r.Outcome, connected: r.Connect > 0,
			connect: time.Duration(r.Intended + r.Connect), end: time.Duration(r.Intended + r.Total)}
		if kind == "nofin" {
			c.end = max(c.end, time.Duration(r.Intended)+hold)
		}
		if r.Outcome == results.OutcomeClosed || r.Outcome == results.OutcomeReset {
			c.cutAt = time.Duration(r.Intended + r.Total)
		}
		c.genLo, c.gen = generation(c.connect, rels)
		cls = append(cls, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read records: %w", err)
	}
	return cls, nil
}

// generation is the process generation serving a connection made at t: generation k serves from reload k-1
// to reload k (generation 0 before the first). A connection made during reload k (until reloadSlack past its
// end) is of generation k or k+1.
func generation(t time.Duration, rels []results.ReloadEvent) (lo, hi int) {
	for k, r := range rels {
		if t < time.Duration(r.Start) {
			return k, k
		}
		if t <= time.Duration(r.End)+reloadSlack {
			return k, k + 1
		}
	}
	return len(rels), len(rels)
}

// oldAt reports whether generation g is old at t (the reload that replaced it has started).
func oldAt(g int, t time.Duration, rels []results.ReloadEvent) bool {
	return g < len(rels) && time.Duration(rels[g].Start) <= t
}

// predictOld bounds the old generations holding a connected client at t.
func predictOld(t time.Duration, cls []client, rels []results.ReloadEvent) (lo, hi, connected int) {
	sure, maybe := map[int]bool{}, map[int]bool{}
	for _, c := range cls {
		if !c.connected || c.connect > t || c.end <= t {
			continue
		}
		connected++
		for g := c.genLo; g <= c.gen; g++ {
			if oldAt(g, t, rels) {
				maybe[g] = true
				if c.genLo == c.gen {
					sure[g] = true
				}
			}
		}
	}
	return len(sure), len(maybe), connected
}

type pidSample struct {
	PID int           `json:"pid"`
	Age time.Duration `json:"age_ns"`
	RSS int64         `json:"rss_bytes"`
}

// readProcs reads the procs series (PIDs oldest first) into r.Procs and r.Old.
func (r *OldProcsResult) readProcs(path string, masterWorker bool, rels []results.ReloadEvent, cls []client) error {
	skip := 1 // the current process
	if masterWorker {
		skip = 2 // the master and the current worker
	}
	births, last := map[int]time.Duration{}, map[int]time.Duration{}
	var times []time.Duration
	err := eachLine(path, func(b []byte) error {
		var smp struct {
			T    time.Duration `json:"t_ns"`
			PIDs []pidSample   `json:"pids"`
		}
		if err := json.Unmarshal(b, &smp); err != nil {
			return err
		}
		p := procPoint(smp.T, smp.PIDs, skip, rels, cls)
		for _, o := range smp.PIDs {
			if _, ok := births[o.PID]; !ok {
				births[o.PID] = smp.T - o.Age
			}
			last[o.PID] = smp.T
		}
		times = append(times, smp.T)
		r.Procs = append(r.Procs, p)
		r.Old.Peak = max(r.Old.Peak, p.Old)
		r.Old.PeakRSS = max(r.Old.PeakRSS, p.OldRSS)
		r.Old.MaxOldestAge = max(r.Old.MaxOldestAge, p.OldestAge)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	r.Old.OldFor = oldFor(births, last, times, rels)
	return nil
}

// procPoint is the process point of a sample at t of pids (oldest first), skip of which are not old (the
// current process; master-worker: the master and the current worker).
func procPoint(t time.Duration, pids []pidSample, skip int, rels []results.ReloadEvent, cls []client) ProcPoint {
	p := ProcPoint{T: t, Old: max(len(pids)-skip, 0), SinceReload: -1}
	p.OldLo, p.OldHi, p.Connected = predictOld(t, cls, rels)
	for _, e := range rels {
		if time.Duration(e.Start) <= t {
			p.Reloads++
			p.SinceReload = t - time.Duration(e.Start)
		}
	}
	olds := pids[min(skip-1, len(pids)):] // oldest first; the master leads in master-worker
	for i, o := range olds[:p.Old] {
		if i == 0 {
			p.OldestAge = o.Age
		}
		p.OldRSS += o.RSS
	}
	return p
}

// oldFor lists, for each process that exited before the last sample, how long it lived after the first reload
// that started after its birth (the one that made it old): until the first sample without it, so an upper
// bound within one sampling interval.
func oldFor(births, last map[int]time.Duration, times []time.Duration, rels []results.ReloadEvent) []time.Duration {
	out := []time.Duration{}
	for pid, seen := range last {
		i, _ := slices.BinarySearch(times, seen)
		if i+1 >= len(times) {
			continue // still alive
		}
		gone := times[i+1]
		for _, e := range rels {
			if start := time.Duration(e.Start); start > births[pid]+reloadSlack/4 {
				out = append(out, gone-start)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// eachLine calls fn for each line of a JSON-lines file.
func eachLine(path string, fn func([]byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// summariseClients counts the clients' outcomes and when the cut ones were cut.
func summariseClients(cls []client, rels []results.ReloadEvent) ClientSummary {
	s := ClientSummary{Attempts: len(cls), CutAfterOld: []time.Duration{}, Times: []ClientTimes{}}
	for _, c := range cls {
		if c.connected {
			s.Connected++
			s.Times = append(s.Times, ClientTimes{Connect: c.connect, Cut: c.cutAt, Released: c.end})
		}
		switch c.outcome {
		case results.OutcomeOK:
			s.Held++
			continue
		case results.OutcomeClosed:
			s.Cut++
		case results.OutcomeReset:
			s.Reset++
		default:
			s.Failed++
			continue
		}
		switch {
		case !oldAt(c.genLo, c.cutAt, rels):
			s.CutWhileCurrent++
		case c.genLo == c.gen:
			s.CutAfterOld = append(s.CutAfterOld, c.cutAt-time.Duration(rels[c.gen].Start))
		}
	}
	return s
}
