package results

import (
	"errors"
	"fmt"
	"hash/fnv"
	"time"
)

// Formats of CellStats.RateMethod (confidence in percent, resamples, bad windows, the bootstrap minimum).
const (
	methodBootstrap = "window bootstrap: %g%% percentile interval of the failure rate, whole windows resampled " +
		"with replacement (B=%d, seeded), widened where needed to cover the per-connection Clopper-Pearson " +
		"interval"
	methodClusterExact = "exact cluster-level interval (%s, fewer than %d, too few for the " +
		"bootstrap): Clopper-Pearson %g%% on the bad windows (k of W), times W/attempts, times one failure per " +
		"bad window (lower bound) or the most failures seen in one window (upper bound; it assumes no window " +
		"fails worse than the worst one seen), widened where needed to cover the per-connection " +
		"Clopper-Pearson interval"
	methodZeroFailures = "zero failures: [0, per-connection Clopper-Pearson %g%% upper bound]; the exact " +
		"cluster-level bound (Clopper-Pearson on 0 bad windows, one failure per window) is never larger"
	methodNoAttempts = "no attempts"
)

// MinBootstrapBadWindows is the number of bad windows below which the failure rate's interval is the exact
// cluster-level one rather than the window bootstrap (which degenerates with a handful of bad windows).
const MinBootstrapBadWindows = 5

// SummaryOptions configures a Summary. Zero values take the defaults.
type SummaryOptions struct {
	Window     WindowOptions
	Resamples  int     // bootstrap resamples; DefaultResamples when zero
	Confidence float64 // DefaultConfidence when zero
	// Seed of the bootstrap; it is mixed with the cell name, so cells resample differently but reproducibly.
	Seed uint64
}

func (o SummaryOptions) withDefaults() SummaryOptions {
	if o.Resamples <= 0 {
		o.Resamples = DefaultResamples
	}
	if o.Confidence <= 0 || o.Confidence >= 1 {
		o.Confidence = DefaultConfidence
	}
	return o
}

// CellStats is everything reported about one cell (pooled over its repetitions). Rates and fractions are in
// [0,1]; durations are nanoseconds in JSON. Connect and Total latencies are over successful attempts and are
// measured from the intended start, so they include pacer lag.
type CellStats struct {
	Cell     string `json:"cell"`
	Reps     int    `json:"reps"`
	Attempts int    `json:"attempts"`
	OK       int    `json:"ok"`
	Failures int    `json:"failures"`
	Resets   int    `json:"resets"` // refused + reset
	Timeouts int    `json:"timeouts"`

	ByOutcome       map[Outcome]int `json:"by_outcome"`
	FailuresByPhase map[Phase]int   `json:"failures_by_phase"`
	Errno           map[string]int  `json:"errno"` // failed attempts by errno ("" when none was recorded)

	FailureRate float64 `json:"failure_rate"`
	// RateCIPerConn is the Wilson 95% interval treating attempts as independent: it ignores clustering.
	RateCIPerConn Interval `json:"failure_rate_ci_per_connection"`
	// RateCI is the interval that respects clustering (see RateMethod); comparisons use it.
	RateCI     Interval `json:"failure_rate_ci"`
	RateMethod string   `json:"failure_rate_method"`

	// Storm says a reload storm was asked for (the cell's metadata, set by Build) or ran (reloads recorded).
	Storm         bool `json:"storm"`
	Reloads       int  `json:"reloads"`
	ReloadsFailed int  `json:"reloads_failed"` // reload commands that reported an error

	WindowKind   string        `json:"window_kind"`               // WindowReload, WindowFixed or WindowMixed
	WindowWidth  time.Duration `json:"window_width_ns,omitempty"` // for fixed windows
	Windows      int           `json:"windows"`                   // windows with at least one attempt
	EmptyWindows int           `json:"empty_windows"`             // windows without attempts (not counted)
	// BadWindows counts windows with at least one failure ("bad reloads" when windows are reload windows).
	BadWindows        int      `json:"bad_windows"`
	BadWindowFraction float64  `json:"bad_window_fraction"`
	BadWindowCI       Interval `json:"bad_window_ci"` // Clopper-Pearson 95%
	ResetWindows      int      `json:"reset_windows"` // windows with at least one refused or reset attempt
	// FailuresPerBadWindowMean and Max describe the size of the bursts.
	FailuresPerBadWindowMean float64 `json:"failures_per_bad_window_mean"`
	FailuresPerBadWindowMax  int     `json:"failures_per_bad_window_max"`

	// Latency quantiles, from a Sketch: within SketchRelativeError of the exact nearest-rank values.
	Connect  Quantiles `json:"connect"`   // successful attempts, from Intended
	Total    Quantiles `json:"total"`     // successful attempts, from Intended
	PacerLag Quantiles `json:"pacer_lag"` // Start - Intended, all attempts

	// Rounds are the counts per round (repetition), in Rep order: comparisons are stratified by them.
	Rounds []RoundCounts `json:"rounds,omitempty"`
	// Drift tests whether the bad-window fraction changed between rounds (nil with fewer than two rounds).
	Drift *Drift `json:"drift,omitempty"`

	// WindowList holds the windows themselves, for plotting; it is not written to reports.
	WindowList []Window `json:"-"`
}

// Summary accumulates one cell's records as they stream in (vegeta Metrics style): Add each record, then Close.
// Its memory does not grow with the number of attempts: latencies go into fixed-size sketches, counts into
// counters. It grows only with the number of windows (reloads, or seconds of the cell without reloads) and of
// distinct errnos.
type Summary struct {
	cell    string
	opt     SummaryOptions
	reloads []ReloadEvent
	win     *Windower
	reps    map[int]bool
	rounds  roundCounter
	st      *CellStats

	connect, total, lag Sketch
}

// NewSummary returns a Summary for the cell, given its reload events (all repetitions; pass nil for none).
func NewSummary(cell string, reloads []ReloadEvent, opt SummaryOptions) *Summary {
	opt = opt.withDefaults()
	st := &CellStats{Cell: cell, ByOutcome: map[Outcome]int{}, FailuresByPhase: map[Phase]int{},
		Errno: map[string]int{}}
	s := &Summary{cell: cell, opt: opt, reloads: reloads, win: NewWindower(reloads, opt.Window),
		reps: map[int]bool{}, rounds: roundCounter{}, st: st}
	for _, ev := range reloads {
		s.reps[ev.Rep] = true
	}
	s.rounds.addReloads(reloads)
	return s
}

// Add accounts one attempt.
func (s *Summary) Add(r *Record) {
	st := s.st
	s.reps[r.Rep] = true
	s.win.Add(r)
	round := s.rounds.get(r.Rep)
	round.Attempts++
	st.Attempts++
	st.ByOutcome[r.Outcome]++
	s.lag.Add(time.Duration(r.Start - r.Intended))
	if !r.Failed() {
		st.OK++
		if r.Connect > 0 {
			s.connect.Add(time.Duration(r.Connect))
		}
		if r.Total > 0 {
			s.total.Add(time.Duration(r.Total))
		}
		return
	}
	st.Failures++
	round.Failures++
	st.FailuresByPhase[r.Phase]++
	st.Errno[r.Errno]++
	switch r.Outcome {
	case OutcomeRefused, OutcomeReset:
		st.Resets++
	case OutcomeTimeout:
		st.Timeouts++
	}
}

// Close computes the statistics and returns them. Add must not be called afterwards.
func (s *Summary) Close() *CellStats {
	st := s.st
	st.Reps = len(s.reps)
	st.Connect, st.Total, st.PacerLag = s.connect.Quantiles(), s.total.Quantiles(), s.lag.Quantiles()
	st.Reloads = len(s.reloads)
	for _, ev := range s.reloads {
		if !ev.OK {
			st.ReloadsFailed++
		}
	}
	st.Storm = st.Reloads > 0
	s.windowStats()
	s.rateStats()
	s.rounds.addWindows(st.WindowList)
	st.Rounds = s.rounds.list()
	st.Drift = DriftOf(s.cell, st.Rounds, s.opt.Resamples, cellSeed(s.opt.Seed, s.cell)^0xd1f7)
	return st
}

// windowStats fills the window counts and the bad-window figures.
func (s *Summary) windowStats() {
	st := s.st
	st.WindowList = s.win.Windows()
	st.WindowKind = s.win.Kind()
	if st.WindowKind != WindowReload {
		st.WindowWidth = s.win.opt.Width
	}
	for _, w := range st.WindowList {
		switch {
		case w.Attempts == 0:
			st.EmptyWindows++
			continue
		case w.Failures > 0:
			st.BadWindows++
			st.FailuresPerBadWindowMax = max(st.FailuresPerBadWindowMax, w.Failures)
		}
		st.Windows++
		if w.Resets() > 0 {
			st.ResetWindows++
		}
	}
	if st.Windows > 0 {
		st.BadWindowFraction = float64(st.BadWindows) / float64(st.Windows)
	}
	if st.BadWindows > 0 {
		st.FailuresPerBadWindowMean = float64(st.Failures) / float64(st.BadWindows)
	}
	st.BadWindowCI = ClopperPearson(st.BadWindows, st.Windows, s.opt.Confidence)
}

// rateStats fills the failure rate and its two intervals. The clustered interval is never narrower than the
// per-connection exact (Clopper-Pearson) one: clustering can only widen what independent attempts would give.
func (s *Summary) rateStats() {
	st, conf := s.st, s.opt.Confidence
	if st.Attempts == 0 {
		st.RateCIPerConn, st.RateCI, st.RateMethod = Interval{0, 1}, Interval{0, 1}, methodNoAttempts
		return
	}
	st.FailureRate = float64(st.Failures) / float64(st.Attempts)
	st.RateCIPerConn = Wilson(st.Failures, st.Attempts, conf)
	exact := ClopperPearson(st.Failures, st.Attempts, conf)
	switch {
	case st.Failures == 0:
		st.RateCI = cover(ClusterExact(0, st.Windows, 0, st.Attempts, conf), exact)
		st.RateMethod = fmt.Sprintf(methodZeroFailures, 100*conf)
	case st.BadWindows < MinBootstrapBadWindows:
		st.RateCI = cover(ClusterExact(st.BadWindows, st.Windows, st.FailuresPerBadWindowMax, st.Attempts, conf),
			exact)
		st.RateMethod = fmt.Sprintf(methodClusterExact, plural(st.BadWindows, "bad window"), MinBootstrapBadWindows,
			100*conf)
	default:
		var fails, attempts []int
		for _, w := range st.WindowList {
			if w.Attempts > 0 {
				fails, attempts = append(fails, w.Failures), append(attempts, w.Attempts)
			}
		}
		st.RateCI = cover(BootstrapRatio(fails, attempts, s.opt.Resamples, conf, cellSeed(s.opt.Seed, s.cell)),
			exact)
		st.RateMethod = fmt.Sprintf(methodBootstrap, 100*conf, s.opt.Resamples)
	}
}

// cover returns the smallest interval containing both.
func cover(a, b Interval) Interval { return Interval{min(a.Lo, b.Lo), max(a.Hi, b.Hi)} }

// cellSeed mixes the cell name into the seed, so each cell has its own reproducible resampling.
func cellSeed(seed uint64, cell string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(cell))
	return seed ^ h.Sum64()
}

// Summarize computes a cell's statistics from its records and reloads held in memory.
func Summarize(cell string, records []Record, reloads []ReloadEvent, opt SummaryOptions) *CellStats {
	s := NewSummary(cell, reloads, opt)
	for i := range records {
		s.Add(&records[i])
	}
	return s.Close()
}

// SummarizeFiles streams a records file and a reloads file (reloadsPath may be empty) and returns the statistics
// of every cell found, by name. A truncated last line (a killed run) gives the statistics of everything before
// it together with an error wrapping ErrTruncated.
func SummarizeFiles(recordsPath, reloadsPath string, opt SummaryOptions) (map[string]*CellStats, error) {
	byCell, rerr := readCellReloads(reloadsPath)
	if rerr != nil && !errors.Is(rerr, ErrTruncated) {
		return nil, fmt.Errorf("summarize: %w", rerr)
	}
	sums := map[string]*Summary{}
	for cell, evs := range byCell {
		sums[cell] = NewSummary(cell, evs, opt) // so a cell with reloads but no attempts is reported
	}
	err := ReadRecords(recordsPath, func(r *Record) error {
		s, ok := sums[r.Cell]
		if !ok {
			s = NewSummary(r.Cell, nil, opt)
			sums[r.Cell] = s
		}
		s.Add(r)
		return nil
	})
	if err != nil && !errors.Is(err, ErrTruncated) {
		return nil, fmt.Errorf("summarize: %w", err)
	}
	out := make(map[string]*CellStats, len(sums))
	for name, s := range sums {
		out[name] = s.Close()
	}
	return out, errors.Join(rerr, err)
}

// readCellReloads reads a reloads file (none when path is empty) grouped by cell.
func readCellReloads(path string) (map[string][]ReloadEvent, error) {
	if path == "" {
		return nil, nil
	}
	evs, err := ReadReloads(path)
	byCell := map[string][]ReloadEvent{}
	for _, ev := range evs {
		byCell[ev.Cell] = append(byCell[ev.Cell], ev)
	}
	return byCell, err
}
