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

// progress shows one bar per cell on a terminal (mpb), and a plain line every few seconds otherwise (CI logs).
type progress struct {
	on    bool
	tty   bool
	p     *mpb.Progress
	mu    sync.Mutex
	bar   *mpb.Bar
	last  runner.Progress
	shown time.Time
}

func newProgress(on bool, cells []spec.Cell) *progress {
	pr := &progress{on: on, tty: isTerminal(os.Stdout)}
	if on && pr.tty {
		pr.p = mpb.New(mpb.WithWidth(30), mpb.WithRefreshRate(200*time.Millisecond))
	}
	return pr
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func (pr *progress) start(c spec.Cell) {
	if !pr.on {
		return
	}
	name := fmt.Sprintf("%-18s", fmt.Sprintf("%s#%d", c.Name, c.Rep))
	if pr.p == nil {
		fmt.Printf("cell %s: %v at %.0f conn/s for %s\n", name, strategyLabel(c), c.Scenario.Workload.Rate,
			c.Scenario.Workload.Duration)
		return
	}
	total := int64(c.Scenario.Workload.Duration / time.Millisecond)
	bar := pr.p.AddBar(total,
		mpb.PrependDecorators(decor.Name(name)),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return pr.line() })))
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

func (pr *progress) line() string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	l := pr.last.Load
	return fmt.Sprintf("%s/%s  %d attempts, %d failed, %d in flight, max lag %s", fmtDur(pr.last.Elapsed),
		fmtDur(pr.last.Duration), l.Launched, l.Failed, l.InFlight, l.MaxLag.Round(time.Millisecond))
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
		return
	}
	if time.Since(pr.shown) >= 5*time.Second {
		pr.shown = time.Now()
		fmt.Printf("  %s\n", pr.line())
	}
}

func (pr *progress) finish(c spec.Cell, out *runner.CellResult, err error) {
	if !pr.on {
		return
	}
	pr.mu.Lock()
	bar := pr.bar
	pr.bar = nil
	pr.mu.Unlock()
	if bar != nil {
		bar.SetTotal(-1, true)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "cell %s: %v\n", c.Name, err)
	} else if pr.p == nil && out != nil {
		fmt.Printf("  done: %d attempts, %d failed, %d reloads; achieved %.1f conn/s, lag p99 %s\n",
			out.Load.Launched, out.Load.Failed, out.Reloads, out.Load.Achieved, out.Load.LagP99)
	}
}

func (pr *progress) wait() {
	if pr.p != nil {
		pr.p.Wait()
	}
}
