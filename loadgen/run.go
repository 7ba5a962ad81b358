package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faultlab/faultlab/results"
)

// Defaults for zero Config fields.
const (
	DefaultMaxInFlight = 20000
	DefaultTimeout     = 10 * time.Second
)

// waitSlack is how long Run waits, beyond the last attempt's deadline, for workloads to return.
const waitSlack = 2 * time.Second

// Config is one run of the load generator in one cell of the matrix.
type Config struct {
	Cell string
	Rep  int
	// Rate is the constant attempt rate in attempts per second (open loop: it does not slow down when the
	// target does).
	Rate float64
	// Duration is the measured phase; Warmup runs before it at the same rate and is not recorded.
	Duration time.Duration
	Warmup   time.Duration
	// Timeout bounds each attempt from its intended start (DefaultTimeout when zero).
	Timeout time.Duration
	Target  netip.AddrPort
	// Targets, when set, spreads the attempts over several servers in turn (attempt seq goes to
	// Targets[seq % len]): a checker's many backends. Target is then Targets[0].
	Targets []netip.AddrPort
	// MaxInFlight bounds concurrent attempts (DefaultMaxInFlight when zero). When it is reached, attempts start
	// late rather than being skipped, and the lag shows.
	MaxInFlight int
	// Seed is kept for randomised workloads and schedules; the constant-rate schedule does not use it.
	Seed int64
	// Epoch is the cell's start and the start of the measured phase: records' Intended and Start are
	// nanoseconds since Epoch, so they share a clock with the reloads and probes of the cell. The warmup runs in
	// [Epoch-Warmup, Epoch), or what of it is still ahead. Zero means now+Warmup (see Summary.Epoch). An Epoch
	// already past makes the measured phase begin late, which shows as lag.
	Epoch time.Time
	// Stats, when set, is updated live during the measured phase.
	Stats *Stats
}

// Summary is what Run measured. Launched, OK, Failed, Outcomes and the lags cover the measured phase only.
type Summary struct {
	Epoch    time.Time
	Target   float64 // the requested rate
	Launched int64
	OK       int64
	Failed   int64
	Outcomes map[results.Outcome]int64
	// Window is the measured time span: Duration, shorter when ctx ended the run early.
	Window time.Duration
	// Achieved is the number of attempts that really started within Window, per second of Window.
	Achieved float64
	// Lags are start-intended; the percentiles are within 1.6%.
	LagP50, LagP99, LagMax time.Duration
	// MaxInFlight is the most attempts that ran at once (warmup included): what the generator's memory
	// follows (each holds a goroutine, a socket and, while reading, a buffer), and what a stall of the machine
	// piles up.
	MaxInFlight int64
}

// Run paces cfg.Rate attempts per second of w at cfg.Target: the warmup, then the measured Duration, whose
// records go to sink (called from one goroutine at a time; nil discards them). It then waits for the attempts in
// flight, which their timeout bounds. Cancelling ctx stops the launching; attempts already begun run to their
// end, and Run returns the Summary of what was recorded together with ctx's error.
func Run(ctx context.Context, cfg Config, w Workload, d *Dialer, sink func(*results.Record)) (Summary, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(w, d); err != nil {
		return Summary{}, err
	}
	now := time.Now()
	if cfg.Epoch.IsZero() {
		cfg.Epoch = now.Add(cfg.Warmup)
	}
	r := newRunner(ctx, cfg, w, d, sink)
	launchErr := r.warmup(ctx, now)
	if launchErr == nil {
		launchErr = r.measure(ctx)
	}
	waitErr := r.wait()
	s := r.summary()
	if launchErr != nil {
		return s, fmt.Errorf("run %s: %w", cfg.Cell, launchErr)
	}
	return s, waitErr
}

func (c Config) withDefaults() Config {
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

func (c Config) validate(w Workload, d *Dialer) error {
	var errs []error
	if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("rate %v: must be a positive number", c.Rate))
	}
	if c.Duration <= 0 {
		errs = append(errs, fmt.Errorf("duration %s: must be positive", c.Duration))
	}
	if c.Warmup < 0 || c.Timeout < 0 || c.MaxInFlight < 0 {
		errs = append(errs, errors.New("warmup, timeout and max in-flight must not be negative"))
	}
	if !c.Target.IsValid() || c.Target.Port() == 0 {
		errs = append(errs, fmt.Errorf("target %q: must be address:port", c.Target))
	}
	for _, t := range c.Targets {
		if !t.IsValid() || t.Port() == 0 {
			errs = append(errs, fmt.Errorf("targets: %q must be address:port", t))
			break
		}
	}
	if w == nil {
		errs = append(errs, errors.New("no workload"))
	}
	if d == nil || d.Socket == nil {
		errs = append(errs, ErrNoSocketFunc)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("validate loadgen config of cell %q: %w", c.Cell, err)
	}
	return nil
}

// runner is one Run's state. Measured-phase attempts are counted in stats, lags and outcomes.
type runner struct {
	cfg   Config
	w     Workload
	d     *Dialer
	base  context.Context // attempts' parent: not cancelled with Run's ctx
	slots chan struct{}
	wg    sync.WaitGroup
	busy  atomic.Int64 // attempts running, warmup included
	peak  atomic.Int64 // the most attempts running at once

	stats    *Stats
	lags     lagHist
	outcomes outcomeCounts
	inWindow atomic.Int64 // measured attempts that started before Epoch+Duration

	window   time.Duration
	lastDue  time.Time
	sinkMu   sync.Mutex
	sink     func(*results.Record)
	sinkDone bool
}

func newRunner(ctx context.Context, cfg Config, w Workload, d *Dialer, sink func(*results.Record)) *runner {
	r := &runner{cfg: cfg, w: w, d: d, base: context.WithoutCancel(ctx), sink: sink, stats: cfg.Stats,
		slots: make(chan struct{}, cfg.MaxInFlight)}
	if r.stats == nil {
		r.stats = new(Stats)
	}
	return r
}

// warmup paces the part of [Epoch-Warmup, Epoch) that is still ahead.
func (r *runner) warmup(ctx context.Context, now time.Time) error {
	start := r.cfg.Epoch.Add(-r.cfg.Warmup)
	if start.Before(now) {
		start = now
	}
	if !start.Before(r.cfg.Epoch) {
		return nil
	}
	_, err := r.pace(ctx, newSchedule(start, r.cfg.Rate, r.cfg.Epoch.Sub(start)), false)
	return err
}

// measure paces the measured phase and sets the window.
func (r *runner) measure(ctx context.Context) error {
	_, err := r.pace(ctx, newSchedule(r.cfg.Epoch, r.cfg.Rate, r.cfg.Duration), true)
	r.window = r.cfg.Duration
	if err != nil {
		r.window = min(max(time.Since(r.cfg.Epoch), 0), r.cfg.Duration)
	}
	return err
}

func (r *runner) pace(ctx context.Context, s schedule, measured bool) (uint64, error) {
	p := pacer{sched: s, slots: r.slots, launch: func(i uint64, intended time.Time) {
		r.lastDue = intended
		r.wg.Add(1)
		go r.attempt(i, intended, measured)
	}}
	return p.run(ctx)
}

// attempt runs one attempt on its own goroutine and releases its slot.
func (r *runner) attempt(seq uint64, intended time.Time, measured bool) {
	defer r.wg.Done()
	for n, p := r.busy.Add(1), r.peak.Load(); n > p && !r.peak.CompareAndSwap(p, n); p = r.peak.Load() {
	}
	defer r.busy.Add(-1)
	start := time.Now()
	rec := &results.Record{Cell: r.cfg.Cell, Rep: r.cfg.Rep, Seq: seq,
		Intended: intended.Sub(r.cfg.Epoch).Nanoseconds(), Start: start.Sub(r.cfg.Epoch).Nanoseconds()}
	if measured {
		lag := start.Sub(intended)
		r.stats.begin(lag)
		r.lags.add(lag)
		if rec.Start < r.cfg.Duration.Nanoseconds() {
			r.inWindow.Add(1)
		}
	}
	ctx, cancel := context.WithDeadline(r.base, intended.Add(r.cfg.Timeout))
	dst := r.cfg.Target
	if n := uint64(len(r.cfg.Targets)); n > 0 {
		dst = r.cfg.Targets[seq%n]
	}
	r.w.Attempt(WithIntended(ctx, intended), r.d, dst, rec)
	cancel()
	<-r.slots
	if measured {
		r.stats.end(!rec.Failed())
		r.outcomes.add(rec.Outcome)
		r.emit(rec)
	}
}

func (r *runner) emit(rec *results.Record) {
	r.sinkMu.Lock()
	defer r.sinkMu.Unlock()
	if r.sink != nil && !r.sinkDone {
		r.sink(rec)
	}
}

// wait waits for the attempts in flight until the last one's deadline plus waitSlack. Records of attempts that
// overrun it (a workload ignoring its context) are dropped so that sink is never called after Run returns.
func (r *runner) wait() error {
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	limit := time.Until(r.lastDue.Add(r.cfg.Timeout)) + waitSlack
	t := time.NewTimer(max(limit, waitSlack))
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
	}
	r.sinkMu.Lock()
	r.sinkDone = true
	r.sinkMu.Unlock()
	n := r.busy.Load()
	return fmt.Errorf("run %s: %d attempts still in flight %s past their deadline", r.cfg.Cell, n, waitSlack)
}

func (r *runner) summary() Summary {
	st := r.stats.Snapshot()
	s := Summary{Epoch: r.cfg.Epoch, Target: r.cfg.Rate, Launched: st.Launched, OK: st.OK, Failed: st.Failed,
		Outcomes: r.outcomes.snapshot(), Window: r.window,
		LagP50: r.lags.quantile(0.50), LagP99: r.lags.quantile(0.99), LagMax: time.Duration(r.lags.max.Load()),
		MaxInFlight: r.peak.Load()}
	if r.window > 0 {
		s.Achieved = float64(r.inWindow.Load()) / r.window.Seconds()
	}
	return s
}
