package impair

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/faultlab/faultlab/harness"
)

// Report records, for results.json, which engine impaired a run, how, what was applied when, and
// whether the engine kept up.
type Report struct {
	// Engine is the engine used; Requested what the scenario asked for (auto, netem, userspace).
	Engine    string       `json:"engine"`
	Requested string       `json:"requested"`
	Available Availability `json:"available"`
	Applied   []Applied    `json:"applied"`
	Stats     EngineStats  `json:"stats"`
	// Overflow is set when packets skipped the delay because the engine exceeded its capacity (see
	// QueueStats); Late when delayed packets left more than 1 ms (p99) after their due time, because the
	// program fell behind or the machine did not give it the CPU. Warnings say what to distrust.
	Overflow bool     `json:"overflow"`
	Late     bool     `json:"late"`
	Warnings []string `json:"warnings,omitempty"`
}

// Applied is one impairment change: planned At the offset from the run's start, begun at Actual and in
// force Took later.
type Applied struct {
	At         time.Duration `json:"at_ns"`
	Actual     time.Duration `json:"actual_ns"`
	Took       time.Duration `json:"took_ns"`
	Host       string        `json:"host"`
	Direction  Direction     `json:"direction"`
	Impairment Impairment    `json:"impairment"`
	Summary    string        `json:"summary"`
	Error      string        `json:"error,omitempty"`
}

// lateWarn is the release lateness (p99) above which a report warns that delays ran long.
const lateWarn = time.Millisecond

// Run is one cell's impairments: an engine, the initial impairments and the schedule running.
type Run struct {
	eng    Engine
	start  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	report  Report
	errs    []error
	closed  bool
	closeEr error
}

// event is one scheduled change.
type event struct {
	at   time.Duration
	host string
	dir  Direction
	imp  Impairment
}

// Start validates cfg against the lab, picks the engine (a named engine that is absent fails with
// ErrEngineUnavailable), applies the impairments in force at time zero and runs the schedule from now.
// The run is also registered on env's cleanup stack; Close ends it and returns the report.
func Start(ctx context.Context, env *harness.Env, cfg Config, opts Options) (*Run, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("impairments: %w", err)
	}
	for i, l := range cfg.Links {
		if _, ok := env.RouterLink[l.Host]; !ok {
			return nil, fmt.Errorf("impairments: links[%d].host: no host %q in the lab", i, l.Host)
		}
	}
	av, err := Detect(env.Router)
	if err != nil {
		return nil, err
	}
	name, err := av.Choose(cfg.Engine)
	if err != nil {
		return nil, err
	}
	eng, err := New(name, TargetOf(env), opts)
	if err != nil {
		return nil, err
	}
	requested := cfg.Engine
	if requested == "" {
		requested = EngineAuto
	}
	r := &Run{eng: eng, report: Report{Engine: name, Requested: requested, Available: av}}
	env.Cleanup.Add("impair engine "+name, func() error { _, err := r.Close(); return err })
	initial, later := plan(cfg)
	r.start = time.Now()
	for _, ev := range initial {
		if err := r.apply(ctx, ev); err != nil {
			_, cerr := r.Close()
			return nil, errors.Join(err, cerr)
		}
	}
	sctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(1)
	go r.schedule(sctx, later)
	return r, nil
}

// plan splits cfg into the changes at time zero and the later ones, in time order.
func plan(cfg Config) (initial, later []event) {
	for _, l := range cfg.Links {
		for _, d := range Directions {
			dc := l.ToHost
			if d == FromHost {
				dc = l.FromHost
			}
			if dc == nil {
				continue
			}
			if !dc.Impairment.IsZero() {
				initial = append(initial, event{0, l.Host, d, dc.Impairment})
			}
			for _, s := range dc.Schedule {
				later = append(later, event{s.At, l.Host, d, s.Impairment})
			}
		}
	}
	sort.SliceStable(later, func(i, j int) bool { return later[i].at < later[j].at })
	return initial, later
}

func (r *Run) schedule(ctx context.Context, events []event) {
	defer r.wg.Done()
	for _, ev := range events {
		t := time.NewTimer(time.Until(r.start.Add(ev.at)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		_ = r.apply(ctx, ev) // recorded in the report and in Close's error
	}
}

func (r *Run) apply(ctx context.Context, ev event) error {
	begun := time.Now()
	err := r.eng.Apply(ctx, Link(ev.host), ev.dir, ev.imp)
	a := Applied{At: ev.at, Actual: begun.Sub(r.start), Took: time.Since(begun), Host: ev.host, Direction: ev.dir,
		Impairment: ev.imp, Summary: ev.imp.String()}
	if err != nil {
		err = fmt.Errorf("impair %s %s at %s: %w", ev.host, ev.dir, ev.at, err)
		a.Error = err.Error()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.report.Applied = append(r.report.Applied, a)
	if err != nil {
		r.errs = append(r.errs, err)
	}
	return err
}

// Started is the time the schedule counts from.
func (r *Run) Started() time.Time { return r.start }

// Engine is the run's engine (to read Stats mid-run).
func (r *Run) Engine() Engine { return r.eng }

// Report is the report so far.
func (r *Run) Report() Report {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if !closed {
		r.fillStats(r.eng.Stats())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.report
	rep.Applied = append([]Applied(nil), r.report.Applied...)
	return rep
}

// Close stops the schedule, tears the engine down and returns the final report; the errors are those of
// failed changes and of the teardown. It is idempotent.
func (r *Run) Close() (Report, error) {
	r.mu.Lock()
	if r.closed {
		defer r.mu.Unlock()
		return r.report, r.closeEr
	}
	r.closed = true
	r.mu.Unlock()
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	err := r.eng.Close()
	r.fillStats(r.eng.Stats())
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeEr = errors.Join(append(r.errs, err)...)
	return r.report, r.closeEr
}

func (r *Run) fillStats(s EngineStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.report.Stats = s
	r.report.Overflow = s.Overflowed()
	r.report.Late = s.Queue != nil && s.Queue.LateP99 > lateWarn
	r.report.Warnings = warnings(s)
}

func warnings(s EngineStats) []string {
	q := s.Queue
	if q == nil {
		return nil
	}
	var w []string
	if s.Overflowed() {
		w = append(w, fmt.Sprintf("the delay program exceeded its capacity: %d of %d queued packets skipped "+
			"it (overflow), %d id gaps, %d socket overruns; delays and orders of those packets are wrong",
			q.Overflow, q.Queued, q.IDGaps, q.ENOBUFS))
	}
	if q.Stale > 0 {
		w = append(w, fmt.Sprintf("%d verdicts named packets the kernel no longer held (ENOENT): it had dropped "+
			"them itself", q.Stale))
	}
	if q.LateP99 > lateWarn {
		w = append(w, fmt.Sprintf("delayed packets left up to %s (p99) after their due time (the program "+
			"read them up to %s late): the delay program fell behind or the machine was too busy", q.LateP99,
			q.RecvLagP99))
	}
	return w
}
