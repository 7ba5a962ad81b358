package runner

import (
	"context"
	"time"

	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/loadgen"
)

// liveCell is what the progress reporter reads of the running cell.
type liveCell struct {
	stats   *loadgen.Stats
	reloads func() int
}

// liveStats returns fresh live counters for c's load generator, read by the progress reporter.
func (r *Runner) liveStats(c *cellRun) *loadgen.Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.live = &liveCell{stats: &loadgen.Stats{}, reloads: c.reloadCount}
	return r.live.stats
}

// startProgress reports the running cell about once a second until the returned stop is called.
func (r *Runner) startProgress(ctx context.Context, cell spec.Cell) (stop func()) {
	if r.Opts.Progress == nil {
		return func() {}
	}
	r.mu.Lock()
	r.live = nil
	r.mu.Unlock()
	done := make(chan struct{})
	t0 := time.Now()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				r.mu.Lock()
				live := r.live
				r.mu.Unlock()
				p := Progress{Cell: cell.Name, Rep: cell.Rep, Elapsed: time.Since(t0),
					Duration: cell.Scenario.Workload.Duration}
				if live != nil {
					p.Load = live.stats.Snapshot()
					p.Reloads = live.reloads()
				}
				r.Opts.Progress(p)
			}
		}
	}()
	return func() { close(done) }
}
