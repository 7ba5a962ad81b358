package results

import (
	"errors"
	"fmt"
	"hash/fnv"
	"time"
)

// Formats of CellStats.RateMethod (confidence in percent, resamples).
const (
	methodBootstrap = "window bootstrap: %g%% percentile interval of the failure rate, whole windows resampled " +
		"with replacement (B=%d, seeded)"
	methodZeroFailures = "zero failures: the window bootstrap degenerates to [0,0], so the interval is [0, " +
		"per-connection Clopper-Pearson %g%% upper bound], which ignores clustering"
	methodNoAttempts = "no attempts"
)

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

	Reloads       int `json:"reloads"`
	ReloadsFailed int `json:"reloads_failed"` // reload commands that reported an error

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
	st      *CellStats

	connect, total, lag Sketch
}

// NewSummary returns a Summary for the cell, given its reload events (all repetitions; pass nil for none).
func NewSummary(cell string, reloads []ReloadEvent, opt SummaryOptions) *Summary {
	opt = opt.withDefaults()
	st := &CellStats{Cell: cell, ByOutcome: map[Outcome]int{}, FailuresByPhase: map[Phase]int{},
		Errno: map[string]int{}}
	s := &Summary{cell: cell, opt: opt, reloads: reloads, win: NewWindower(reloads, opt.Window),
		reps: map[int]bool{}, st: st}
	for _, ev := range reloads {
		s.reps[ev.Rep] = true
	}
	return s
}

// Add accounts one attempt.
func (s *Summary) Add(r *Record) {
	st := s.st
	s.reps[r.Rep] = true
	s.win.Add(r)
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
	s.windowStats()
	s.rateStats()
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

// rateStats fills the failure rate and its two intervals.
func (s *Summary) rateStats() {
	st := s.st
	if st.Attempts == 0 {
		st.RateCIPerConn, st.RateCI, st.RateMethod = Interval{0, 1}, Interval{0, 1}, methodNoAttempts
		return
	}
	st.FailureRate = float64(st.Failures) / float64(st.Attempts)
	st.RateCIPerConn = Wilson(st.Failures, st.Attempts, s.opt.Confidence)
	if st.Failures == 0 {
		st.RateCI = Interval{0, ClopperPearson(0, st.Attempts, s.opt.Confidence).Hi}
		st.RateMethod = fmt.Sprintf(methodZeroFailures, 100*s.opt.Confidence)
		return
	}
	var fails, attempts []int
	for _, w := range st.WindowList {
		if w.Attempts > 0 {
			fails, attempts = append(fails, w.Failures), append(attempts, w.Attempts)
		}
	}
	st.RateCI = BootstrapRatio(fails, attempts, s.opt.Resamples, s.opt.Confidence, cellSeed(s.opt.Seed, s.cell))
	st.RateMethod = fmt.Sprintf(methodBootstrap, 100*s.opt.Confidence, s.opt.Resamples)
}

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
