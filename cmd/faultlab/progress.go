package main

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/faultlab/faultlab/harness/runner"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"
)

// progress shows one bar per cell on a terminal (mpb), refreshed live. Off a terminal (CI logs, pipes) it is
// quiet while a cell runs and writes one line as each cell starts and one as it ends. Both say where the run
// is: the cell, its round, the cells done of those planned, the load time so far of the planned total, and
// the attempts and failures of the run so far. `go test` passes no progress function to the runner, so the
// tests print nothing of it.
type progress struct {
	on   bool
	p    *mpb.Progress
	plan runPlan

	mu   sync.Mutex
	bar  *mpb.Bar
	last runner.Progress
	run  runTotals // the cells ended so far
}

// runPlan is what the run will do: its blocks (a cell's round), rounds and planned load time.
type runPlan struct {
	blocks, rounds int
	load           time.Duration
}

// runTotals is what the ended blocks did.
type runTotals struct {
	blocks             int
	load               time.Duration
	attempts, failures int64
}

func newProgress(on bool, cells []spec.Cell) *progress {
	pr := &progress{on: on, plan: planOf(cells)}
	if on && isTerminal(os.Stdout) {
		pr.p = mpb.New(mpb.WithWidth(30), mpb.WithRefreshRate(200*time.Millisecond))
	}
	return pr
}

func planOf(cells []spec.Cell) runPlan {
	p := runPlan{blocks: len(cells)}
	for _, c := range cells {
		p.rounds = max(p.rounds, c.Rep+1)
		p.load += c.Scenario.Workload.Duration
	}
	return p
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// where is the run's position: block k of n, round r of R, load time so far of the total.
func (pr *progress) where(c spec.Cell, elapsed time.Duration) string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return fmt.Sprintf("[%d/%d, round %d/%d, %s/%s]", pr.run.blocks+1, pr.plan.blocks, c.Rep+1,
		max(pr.plan.rounds, 1), fmtDur(pr.run.load+elapsed), fmtDur(pr.plan.load))
}

func (pr *progress) start(c spec.Cell) {
	if !pr.on {
		return
	}
	if pr.p == nil {
		fmt.Printf("%s cell %s: %v at %.0f conn/s for %s\n", pr.where(c, 0), c.Name, strategyLabel(c),
			c.Scenario.Workload.Rate, c.Scenario.Workload.Duration)
		return
	}
	name := fmt.Sprintf("%-18s", fmt.Sprintf("%s r%d/%d", c.Name, c.Rep+1, max(pr.plan.rounds, 1)))
	total := int64(c.Scenario.Workload.Duration / time.Millisecond)
	bar := pr.p.AddBar(total,
		mpb.PrependDecorators(decor.Name(name)),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return pr.line(c) })))
	pr.mu.Lock()
	pr.bar, pr.last = bar, runner.Progress{}
	pr.mu.Unlock()
}

func strategyLabel(c spec.Cell) string {
	if c.Scenario.Reload == nil {
		return "no reloads"
	}
	return fmt.Sprintf("reload every %s, mitigations %v", c.Scenario.Reload.Interval, c.Mitigations)
}

// line is a running cell's live line: its attempts and failures, and the run's so far.
func (pr *progress) line(c spec.Cell) string {
	pr.mu.Lock()
	l, run, elapsed := pr.last.Load, pr.run, pr.last.Elapsed
	pr.mu.Unlock()
	return fmt.Sprintf("%s  %d attempts, %d failed, %d in flight, max lag %s; run: %d attempts, %d failed",
		pr.where(c, elapsed), l.Launched, l.Failed, l.InFlight, l.MaxLag.Round(time.Millisecond),
		run.attempts+l.Launched, run.failures+l.Failed)
}

func (pr *progress) update(p runner.Progress) {
	if !pr.on {
		return
	}
	pr.mu.Lock()
	pr.last = p
	bar := pr.bar
	pr.mu.Unlock()
	if bar != nil {
		bar.SetCurrent(int64(min(p.Elapsed, p.Duration) / time.Millisecond))
	}
}

func (pr *progress) finish(c spec.Cell, out *runner.CellResult, err error) {
	if !pr.on {
		return
	}
	pr.mu.Lock()
	bar := pr.bar
	pr.bar = nil
	pr.run.blocks++
	pr.run.load += c.Scenario.Workload.Duration
	if out != nil {
		pr.run.attempts += out.Load.Launched
		pr.run.failures += out.Load.Failed
	}
	run := pr.run
	pr.mu.Unlock()
	if bar != nil {
		bar.SetTotal(-1, true)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "cell %s round %d: %v\n", c.Name, c.Rep+1, err)
	} else if pr.p == nil && out != nil {
		fmt.Printf("  done: %d attempts, %d failed, %d reloads; achieved %.1f conn/s, lag p99 %s; run so far: "+
			"%d of %d blocks, %d attempts, %d failed\n", out.Load.Launched, out.Load.Failed, out.Reloads,
			out.Load.Achieved, out.Load.LagP99, run.blocks, pr.plan.blocks, run.attempts, run.failures)
	}
}

func (pr *progress) wait() {
	if pr.p != nil {
		pr.p.Wait()
	}
}
