// Package faults holds the lab's process-level faults: the reload storm, and the syn-drop window that can
// be wrapped around each reload as a mitigation.
package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/faultlab/faultlab/harness/services"
	"github.com/faultlab/faultlab/results"
)

// Around is something done around each reload of a storm (e.g. the syn-drop window). An error from either
// method stops the storm: the mitigation under test was not in place.
type Around interface {
	Before(ctx context.Context) error
	After(ctx context.Context) error
}

// DefaultReloadTimeout bounds one reload (with its Around) when ReloadStorm.ReloadTimeout is zero.
const DefaultReloadTimeout = 30 * time.Second

// ReloadStorm reloads Target every Interval (plus a uniform jitter in [-Jitter, +Jitter] drawn from a
// generator seeded with Seed) until the context of Run ends. Reloads never overlap: when one takes longer
// than the delay drawn for it, the next starts as soon as it returns, and Late counts it. Each reload
// becomes one results.ReloadEvent given to Sink (Seq from 0, times in nanoseconds since Epoch; Cell and Rep
// are left for the sink to fill).
type ReloadStorm struct {
	Target services.Reloadable
	// Strategy labels the events; empty takes the target's Strategy() when it has one.
	Strategy         string
	Interval, Jitter time.Duration
	Seed             int64
	// Epoch is time zero of the events (the cell's start); zero means the start of Run.
	Epoch time.Time
	Sink  func(results.ReloadEvent)
	// Around, when set, is called before and after each reload.
	Around Around
	// ReloadTimeout bounds one reload with its Around (default DefaultReloadTimeout). A reload under way
	// when Run's context ends is completed (within this bound), never cut short.
	ReloadTimeout time.Duration

	late     atomic.Int64
	reloads  atomic.Int64
	failures atomic.Int64
}

// Reloads is the number of reloads performed so far.
func (s *ReloadStorm) Reloads() int { return int(s.reloads.Load()) }

// Failures is the number of reloads that failed so far.
func (s *ReloadStorm) Failures() int { return int(s.failures.Load()) }

// Late is the number of reloads that started late because the previous one outlasted its delay.
func (s *ReloadStorm) Late() int { return int(s.late.Load()) }

// Run runs the storm until ctx ends and then returns nil. It returns early with an error when the storm is
// misconfigured or an Around step fails; a failed reload is recorded (OK false) and the storm goes on.
func (s *ReloadStorm) Run(ctx context.Context) error {
	if err := s.validate(); err != nil {
		return err
	}
	epoch := s.Epoch
	if epoch.IsZero() {
		epoch = time.Now()
	}
	strategy := s.Strategy
	if st, ok := s.Target.(interface{ Strategy() string }); ok && strategy == "" {
		strategy = st.Strategy()
	}
	rng := rand.New(rand.NewPCG(uint64(s.Seed), 0x6661756c746c6162)) // "faultlab"
	next := time.Now().Add(s.delay(rng))
	for seq := 0; ; seq++ {
		if !sleepUntil(ctx, next) {
			return nil
		}
		started := time.Now()
		ev, err := s.reloadOnce(ctx, seq, strategy, epoch)
		if s.Sink != nil {
			s.Sink(ev)
		}
		if err != nil {
			return err
		}
		next = started.Add(s.delay(rng))
		if time.Now().After(next) {
			s.late.Add(1)
		}
	}
}

func (s *ReloadStorm) validate() error {
	var errs []error
	if s.Target == nil {
		errs = append(errs, errors.New("no target"))
	}
	if s.Interval <= 0 {
		errs = append(errs, fmt.Errorf("interval %s: must be positive", s.Interval))
	}
	if s.Jitter < 0 || (s.Interval > 0 && s.Jitter >= s.Interval) {
		errs = append(errs, fmt.Errorf("jitter %s: must be in [0, interval %s)", s.Jitter, s.Interval))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reload storm: %w", err)
	}
	return nil
}

// delay draws the time from one reload's start to the next one's: Interval plus a uniform jitter.
func (s *ReloadStorm) delay(rng *rand.Rand) time.Duration {
	if s.Jitter == 0 {
		return s.Interval
	}
	return s.Interval + time.Duration(rng.Int64N(2*int64(s.Jitter)+1)) - s.Jitter
}

// reloadOnce performs one reload with its Around steps and describes it. The returned error is an Around
// failure, which ends the storm.
func (s *ReloadStorm) reloadOnce(ctx context.Context, seq int, strategy string, epoch time.Time) (
	results.ReloadEvent, error) {
	timeout := s.ReloadTimeout
	if timeout <= 0 {
		timeout = DefaultReloadTimeout
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	ev := results.ReloadEvent{Seq: seq, Strategy: strategy}
	s.reloads.Add(1)
	var aroundErr error
	if s.Around != nil {
		if err := s.Around.Before(rctx); err != nil {
			aroundErr = fmt.Errorf("reload %d: before: %w", seq, err)
		}
	}
	var res services.ReloadResult
	var err error
	if aroundErr == nil {
		res, err = s.Target.Reload(rctx)
	}
	if s.Around != nil {
		if aerr := s.Around.After(rctx); aerr != nil {
			aroundErr = errors.Join(aroundErr, fmt.Errorf("reload %d: after: %w", seq, aerr))
		}
	}
	now := time.Now()
	if res.Start.IsZero() {
		res.Start = now
	}
	if res.End.IsZero() {
		res.End = now
	}
	ev.Start, ev.End = res.Start.Sub(epoch).Nanoseconds(), res.End.Sub(epoch).Nanoseconds()
	if err = errors.Join(err, aroundErr); err != nil {
		ev.Error = err.Error()
		s.failures.Add(1)
	}
	ev.OK = err == nil
	ev.Procs = s.Target.Procs()
	return ev, aroundErr
}

// sleepUntil waits until t; it reports false when ctx ends first (or has ended).
func sleepUntil(ctx context.Context, t time.Time) bool {
	if ctx.Err() != nil {
		return false
	}
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
