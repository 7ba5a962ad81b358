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
	long                bool
	seed                int64
	quiet               bool
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
	o := runner.Options{Backend: f.backend, Long: f.long, OutDir: f.out, Seed: f.seed}
	for _, n := range strings.Split(f.cells, ",") {
		if n = strings.TrimSpace(n); n != "" {
			o.Cells = append(o.Cells, n)
		}
	}
	return o
}

func cmdRun(ctx context.Context, args []string) error {
	f, file, err := parseRunFlags("run", args)
	if err != nil {
		return err
	}
	s, err := spec.Load(file)
	if err != nil {
		return err
	}
	r, err := runner.New(s, f.options())
	if err != nil {
		return err
	}
	fmt.Printf("faultlab %s: scenario %s, %d cells, run %s\n  directory %s\n", runner.Version, s.Name,
		len(r.Cells()), r.ID, r.Dir)
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
	for _, v := range rep.Verdicts {
		if !v.Pass {
			errs = append(errs, fmt.Errorf("expectation failed: %s: %s", v.Cell, v.Claim))
		}
	}
	return errors.Join(errs...)
}

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
