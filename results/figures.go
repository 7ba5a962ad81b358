package results

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot/plotter"
)

// Figures makes the HTML report's plots, in page order, and says which it left out and why. Every figure
// comes from results.json's statistics or from the run directory's files (the first round of each cell for
// the time series, so a long run's page stays small).
func Figures(r *Report, runDir string) (figs []Figure, missing []string) {
	add := func(f Figure, ok bool, why string, err error) {
		switch {
		case err != nil:
			missing = append(missing, fmt.Sprintf("%s: %v", f.ID, err))
		case !ok:
			missing = append(missing, why)
		default:
			figs = append(figs, f)
		}
	}
	add(failureRateFigure(r))
	add(badWindowFigure(r))
	add(connectCDFFigure(r, runDir))
	add(timelineOf(r, runDir))
	for _, f := range socketStateFigures(r, runDir) {
		figs = append(figs, f)
	}
	add(zeroWindowFigure(r))
	add(driftFigure(r))
	return figs, missing
}

func failureRateFigure(r *Report) (Figure, bool, string, error) {
	return cellRateFigure(r, "failure-rate", "Failure rate per cell",
		"Failed attempts over all attempts, with the 95% interval that respects clustering (failures come in "+
			"bursts, one per unlucky reload: window bootstrap, or the exact cluster-level interval with few "+
			"bad windows). A mitigation that works sits at 0 with a short bar.", "failed attempts (%)",
		func(st *CellStats) (float64, Interval) { return st.FailureRate, st.RateCI })
}

func badWindowFigure(r *Report) (Figure, bool, string, error) {
	return cellRateFigure(r, "bad-windows", "Bad-window fraction per cell",
		"Windows (one per reload in a storm cell, fixed windows otherwise) with at least one failure, with "+
			"the Clopper-Pearson 95% interval: the unit the comparisons and verdicts count.", "bad windows (%)",
		func(st *CellStats) (float64, Interval) { return st.BadWindowFraction, st.BadWindowCI })
}

// cellRateFigure plots one proportion per cell with statistics, with its interval.
func cellRateFigure(r *Report, id, title, caption, ylabel string,
	pick func(*CellStats) (float64, Interval)) (Figure, bool, string, error) {
	var names []string
	var vals []float64
	var ivs []Interval
	for _, c := range r.Cells {
		if c.Stats != nil {
			v, iv := pick(c.Stats)
			names, vals, ivs = append(names, c.Name), append(vals, v), append(ivs, iv)
		}
	}
	f, err := rateFigure(id, title, caption, ylabel, names, vals, ivs, true)
	return f, len(names) > 0, id + ": no cell has statistics", err
}

// repDirs are the repetition directories of a cell in the run directory, in rep order.
func repDirs(runDir, cell string) []string {
	if runDir == "" {
		return nil
	}
	dirs, _ := filepath.Glob(filepath.Join(runDir, cell, "rep*"))
	rep := func(d string) int { n, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "rep")); return n }
	slices.SortFunc(dirs, func(a, b string) int { return rep(a) - rep(b) })
	return dirs
}

// connectCDFFigure plots each cell's connect-time distribution (successful attempts, all repetitions), from
// a fixed-memory sketch per cell.
func connectCDFFigure(r *Report, runDir string) (Figure, bool, string, error) {
	var series []lineSeries
	for i, c := range r.Cells {
		var sk Sketch
		for _, d := range repDirs(runDir, c.Name) {
			_ = ReadRecords(filepath.Join(d, RecordsFile), func(rec *Record) error {
				if rec.Outcome == OutcomeOK && rec.Connect > 0 {
					sk.Add(time.Duration(rec.Connect))
				}
				return nil
			}) // a truncated file still gives what it has; a missing one nothing
		}
		if sk.N() == 0 {
			continue
		}
		var pts plotter.XYs
		for k := 0; k <= 400; k++ {
			q := float64(k) / 400
			d := sk.Quantile(q)
			if d > 0 {
				pts = append(pts, plotter.XY{X: float64(d) / float64(time.Millisecond), Y: 100 * q})
			}
		}
		series = append(series, lineSeries{name: c.Name, pts: pts, color: i})
	}
	f, err := linesFigure("connect-cdf", "Connect time, cumulative distribution",
		"Share of successful attempts (y) that had connected within x ms of their intended start (so pacer "+
			"lag counts). A step near 1,000 ms or 3,000 ms is SYNs retransmitted after a drop or an accept-"+
			"queue overflow; a long flat tail under 100% is the slowest 1%.",
		"connect time (ms, log scale)", "attempts connected (%)", series, true)
	return f, len(series) > 0, "connect-time CDF: no records in the run directory", err
}

// timelineOf plots, for every cell with a reload storm, its first round: reloads and failures.
func timelineOf(r *Report, runDir string) (Figure, bool, string, error) {
	var rows []timelineRow
	for _, c := range r.Cells {
		dirs := repDirs(runDir, c.Name)
		if !c.Storm || len(dirs) == 0 {
			continue
		}
		row := timelineRow{name: c.Name}
		evs, _ := ReadReloads(filepath.Join(dirs[0], ReloadsFile))
		for _, ev := range evs {
			row.reloads = append(row.reloads, float64(ev.Start)/1e9)
		}
		seen := map[int64]bool{} // one cross per 10 ms: a burst of 200 failures is one mark
		_ = ReadRecords(filepath.Join(dirs[0], RecordsFile), func(rec *Record) error {
			if bin := rec.Intended / int64(10*time.Millisecond); rec.Failed() && !seen[bin] {
				seen[bin] = true
				row.failures = append(row.failures, float64(rec.Intended)/1e9)
			}
			return nil
		})
		rows = append(rows, row)
	}
	f, err := timelineFigure("reload-timeline", "Reload timeline, first round",
		"One row per cell with a reload storm: each grey tick is a reload starting, each red cross the "+
			"failed attempts intended within one 10 ms slot. Crosses right after a tick are the reload's "+
			"resets; crosses far from any tick are failures the reload does not explain.", rows)
	return f, len(rows) > 0, "reload timeline: no cell with a reload storm and its files", err
}

// stateLine is what the socket-state plots read of a states-<host>.jsonl line.
type stateLine struct {
	T      int64 `json:"t_ns"`
	States struct {
		Established int `json:"established"`
		TimeWait    int `json:"time_wait"`
		FinWait2    int `json:"fin_wait2"`
		CloseWait   int `json:"close_wait"`
	} `json:"states"`
}

// socketStateFigures plots, per host with a states series, each cell's ESTABLISHED (dashed) and TIME_WAIT
// (solid) counts over its first round.
func socketStateFigures(r *Report, runDir string) []Figure {
	byHost := map[string][]lineSeries{}
	for i, c := range r.Cells {
		dirs := repDirs(runDir, c.Name)
		if len(dirs) == 0 {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(dirs[0], "states-*.jsonl"))
		for _, file := range files {
			host := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(file), "states-"), ".jsonl")
			tw, est := readStates(file)
			byHost[host] = append(byHost[host], lineSeries{name: c.Name + " TIME_WAIT", pts: tw, color: i},
				lineSeries{name: c.Name + " ESTABLISHED", pts: est, color: i, dashed: true})
		}
	}
	var figs []Figure
	for _, host := range slices.Sorted(maps.Keys(byHost)) {
		f, err := linesFigure("states-"+host, "Socket states on "+host,
			"TCP sockets of the host's namespace by state over each cell's first round (inet_diag dump): "+
				"TIME_WAIT solid, ESTABLISHED dashed, one colour per cell. TIME_WAIT climbing toward the port "+
				"range is port exhaustion; ESTABLISHED piling up is a stalled proxy.",
			"seconds into the first round", "sockets", byHost[host], false)
		if err == nil {
			figs = append(figs, f)
		}
	}
	return figs
}

func readStates(path string) (tw, est plotter.XYs) {
	_ = readJSONL(path, func(line []byte) error {
		var s stateLine
		if json.Unmarshal(line, &s) == nil {
			tw = append(tw, plotter.XY{X: float64(s.T) / 1e9, Y: float64(s.States.TimeWait)})
			est = append(est, plotter.XY{X: float64(s.T) / 1e9, Y: float64(s.States.Established)})
		}
		return nil
	})
	return tw, est
}

// zeroWindowFigure plots the zero_window analysis's fraction of backend connections that saw a zero window.
func zeroWindowFigure(r *Report) (Figure, bool, string, error) {
	var names []string
	var vals []float64
	var ivs []Interval
	for _, c := range r.Cells {
		var conns, zw int
		for _, a := range c.Analyses {
			if a.Name != "zero_window" {
				continue
			}
			type counts struct {
				Conns          int `json:"conns"`
				WithZeroWindow int `json:"with_zero_window"`
			}
			var list []counts
			if json.Unmarshal(a.Result, &list) != nil { // one result per host, or one result
				var one counts
				if json.Unmarshal(a.Result, &one) != nil {
					continue
				}
				list = []counts{one}
			}
			for _, z := range list {
				conns, zw = conns+z.Conns, zw+z.WithZeroWindow
			}
		}
		if conns > 0 {
			names = append(names, c.Name)
			vals = append(vals, float64(zw)/float64(conns))
			ivs = append(ivs, Wilson(zw, conns, 0.95))
		}
	}
	f, err := rateFigure("zero-window", "Zero-window fraction per cell",
		"Backend connections on which the proxy advertised a zero window (zero_window analysis of the "+
			"capture), with the 95% Wilson interval over connections.",
		"connections with a zero window (%)", names, vals, ivs, true)
	return f, len(names) > 0, "zero-window fraction: no cell ran the zero_window analysis", err
}

// driftFigure plots each cell's bad-window fraction per round (block): the machine's drift over the run.
func driftFigure(r *Report) (Figure, bool, string, error) {
	var series []lineSeries
	for i, c := range r.Cells {
		if c.Stats == nil || len(c.Stats.Rounds) < 2 {
			continue
		}
		var pts plotter.XYs
		for _, rd := range c.Stats.Rounds {
			if rd.Windows > 0 {
				pts = append(pts, plotter.XY{X: float64(rd.Rep + 1), Y: 100 * float64(rd.BadWindows) /
					float64(rd.Windows)})
			}
		}
		series = append(series, lineSeries{name: c.Name, pts: pts, color: i})
	}
	f, err := linesFigure("drift", "Bad-window fraction by round",
		"Each cell's bad-window fraction in each interleaved round (block). Cells moving together are the "+
			"machine drifting (the comparisons are stratified by round for that reason); one cell moving "+
			"alone is that cell.", "round", "bad windows (%)", series, false)
	return f, len(series) > 0, "round drift: fewer than two rounds", err
}
