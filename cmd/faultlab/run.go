package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/faultlab/faultlab/harness/runner"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/results"
)

type runFlags struct {
	backend, out, cells string
	junit               string // run: also write the claims as JUnit XML to this file
	long                bool
	seed                int64
	quiet               bool
	untilDecided        bool
	budget              time.Duration
	acceptInconclusive  bool
	sets                listFlag // --set HOST:SYSCTL=V1,V2, repeatable (axes.go)
	shard               string   // --shard I/N
	kernel              string   // --kernel NAME: one kernel's part of a run under several (kernels.go)
}

// parseRunFlags parses run's and up's flags, which may come before or after the scenario file.
func parseRunFlags(name string, args []string) (*runFlags, string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	f := &runFlags{}
	fs.StringVar(&f.backend, "backend", os.Getenv("FAULTLAB_BACKEND"), "netns or docker (default: the scenario's; env FAULTLAB_BACKEND)")
	fs.StringVar(&f.out, "out", "runs", "base directory for run directories")
	fs.StringVar(&f.cells, "cells", "", "comma-separated cells to run (default: all)")
	fs.BoolVar(&f.long, "long", os.Getenv("FAULTLAB_LONG") == "1", "long (nightly) mode: the scenario's long settings (env FAULTLAB_LONG=1)")
	fs.Int64Var(&f.seed, "seed", 0, "override the scenario's seed")
	fs.BoolVar(&f.quiet, "q", false, "no progress output")
	fs.Var(&f.sets, "set", "HOST:SYSCTL=V1,V2: cross every cell with a sysctl axis (repeatable)")
	fs.StringVar(&f.shard, "shard", "", "I/N: run the I-th of N deterministic slices of the run (by round when "+
		"the run has several, else by cell); `faultlab merge` combines the shards")
	fs.StringVar(&f.kernel, "kernel", "", "NAME: of a scenario with kernels:, run only the cells of that kernel "+
		"on this machine, as one part of the whole run (`faultlab run` does this for each kernel and merges)")
	if name == "run" {
		fs.BoolVar(&f.untilDecided, "until-decided", false, "add interleaved rounds until every claim is decided "+
			"or the budget is spent (group-sequential design)")
		fs.DurationVar(&f.budget, "budget", runner.DefaultBudget, "with --until-decided: the time the rounds may take")
		fs.StringVar(&f.junit, "junit", "", "also write the verdicts as JUnit XML to `FILE` (one test case per claim)")
		fs.BoolVar(&f.acceptInconclusive, "accept-inconclusive", os.Getenv("FAULTLAB_ACCEPT_INCONCLUSIVE") == "1",
			"exit 0 when claims end inconclusive (default: exit 3; env FAULTLAB_ACCEPT_INCONCLUSIVE=1)")
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: faultlab %s FILE [flags]   (flags may also come before FILE)\n", name)
		fs.PrintDefaults()
	}
	if err := parseInterspersed(fs, args); err != nil {
		return nil, "", err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return nil, "", errors.New(name + ": want exactly one scenario file")
	}
	return f, fs.Arg(0), nil
}

// options are the runner options the flags ask for.
func (f *runFlags) options() runner.Options {
	o := runner.Options{Backend: f.backend, Long: f.long, OutDir: f.out, Seed: f.seed,
		UntilDecided: f.untilDecided, Budget: f.budget, Kernel: f.kernel}
	for _, n := range strings.Split(f.cells, ",") {
		if n = strings.TrimSpace(n); n != "" {
			o.Cells = append(o.Cells, n)
		}
	}
	return o
}

// loadRun parses the flags of run or up and loads the scenario, crossed with any --set axes.
func loadRun(name string, args []string) (*runFlags, string, *spec.Scenario, error) {
	f, file, err := parseRunFlags(name, args)
	if err != nil {
		return nil, "", nil, err
	}
	s, err := spec.Load(file)
	if err != nil {
		return nil, "", nil, err
	}
	if err := f.addAxes(s); err != nil {
		return nil, "", nil, err
	}
	return f, file, s, nil
}

// newRunner parses the flags of run or up, loads the scenario and makes its runner (which checks it first).
func newRunner(name string, args []string) (*runFlags, *spec.Scenario, *runner.Runner, error) {
	f, _, s, err := loadRun(name, args)
	if err != nil {
		return nil, nil, nil, err
	}
	r, err := f.runner(s)
	return f, s, r, err
}

// runner makes the runner of the flags' options for s.
func (f *runFlags) runner(s *spec.Scenario) (*runner.Runner, error) {
	opts, err := f.shardOptions(f.options())
	if err != nil {
		return nil, err
	}
	return runner.New(s, opts)
}

func cmdRun(ctx context.Context, args []string) error {
	f, file, s, err := loadRun("run", args)
	if err != nil {
		return err
	}
	if len(s.Kernels) > 0 && f.kernel == "" {
		return runKernels(ctx, f, file, s, args)
	}
	r, err := f.runner(s)
	if err != nil {
		return err
	}
	rep, errs := runCells(ctx, f, r)
	if rep == nil {
		return errors.Join(errs...)
	}
	fmt.Println()
	_ = results.Markdown(os.Stdout, rep)
	fmt.Printf("\nresults: %s\n", filepath.Join(r.Dir, "results.json"))
	if path := os.Getenv("FAULTLAB_MEMPROFILE"); path != "" {
		errs = append(errs, writeHeapProfile(path))
	}
	if kb := peakRSS(); kb > 0 {
		fmt.Printf("peak RSS of faultlab (load generator included, daemons not): %d MB\n", kb/1024)
	}
	if f.junit != "" {
		if err := writeRunJUnit(f.junit, rep); err != nil {
			errs = append(errs, err)
		}
	}
	if f.shard != "" || f.kernel != "" {
		fmt.Println("this is one part of a run: its claims are judged on the merged run, not here")
		return errors.Join(errs...)
	}
	if err := unmetClaims(rep.Verdicts, f.acceptInconclusive, len(errs) > 0); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// runCells runs r's cells with progress bars (unless -q) and returns the report and what went wrong.
func runCells(ctx context.Context, f *runFlags, r *runner.Runner) (*results.Report, []error) {
	fmt.Printf("faultlab %s: scenario %s, %d cells, run %s\n  directory %s\n", runner.Version, r.Scenario.Name,
		len(r.Cells()), r.ID, r.Dir)
	for _, line := range r.Refused {
		fmt.Printf("  %s\n", line)
	}
	if cells := r.Cells(); f.untilDecided && len(cells) > 0 {
		fmt.Printf("  until decided: at most %d rounds of %s per cell within %s; stops at the first round after "+
			"which every claim is decided\n", cells[len(cells)-1].Rep+1, cells[0].Scenario.Workload.Duration,
			f.budget)
	}
	bars := newProgress(!f.quiet, r.Cells())
	r.Opts.Progress = bars.update
	rep, runErr := r.Run(ctx, func(c spec.Cell, run func() (*runner.CellResult, error)) {
		bars.start(c)
		out, err := run()
		bars.finish(c, out, err)
	})
	bars.wait()
	var errs []error
	if runErr != nil {
		errs = append(errs, runErr)
	}
	return rep, errs
}

// unmetClaims is the error for the claims that did not hold (nil when all did, or the rest are inconclusive
// and accepted); runFailed says a cell or the run failed too, which makes even inconclusive claims exit 1.
func unmetClaims(vs []results.Verdict, acceptInconclusive, runFailed bool) error {
	unmet, _ := results.Unmet(vs, acceptInconclusive)
	if len(unmet) == 0 {
		return nil
	}
	err := &unmetError{code: 3}
	for _, v := range unmet {
		err.lines = append(err.lines, fmt.Sprintf("%s: %s: %s", v.Status, v.Cell, v.Claim))
		if v.Status != results.StatusInconclusive || runFailed {
			err.code = 1 // a fails or void claim, or a cell that failed: not just undecided
		}
	}
	return err
}

// unmetError is a run whose claims did not all hold: exit status 1 when one fails or is void (the fault did
// not happen as asked), 3 when the rest are only inconclusive (more running may decide them).
type unmetError struct {
	lines []string
	code  int
}

func (e *unmetError) Error() string {
	return fmt.Sprintf("%d claim(s) not met:\n  %s", len(e.lines), strings.Join(e.lines, "\n  "))
}

func (e *unmetError) ExitCode() int { return e.code }

func fmtDur(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }

// peakRSS is this process's peak resident set (VmHWM) in KiB, 0 when unknown. Only this process: the daemons
// are children whose own peaks getrusage would fold in.
func peakRSS() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb
		}
	}
	return 0
}

// writeHeapProfile writes a heap profile (go tool pprof) of the live memory at the end of the run.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	runtime.GC()
	return errors.Join(pprof.WriteHeapProfile(f), f.Close())
}
