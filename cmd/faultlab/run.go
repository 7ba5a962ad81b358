package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/faultlab/faultlab/harness/runner"
	"github.com/faultlab/faultlab/harness/spec"
)

type runFlags struct {
	backend, out, cells string
	long                bool
	seed                int64
	quiet               bool
}

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
		fmt.Fprintf(fs.Output(), "usage: faultlab %s [flags] FILE\n", name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, "", err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return nil, "", errors.New(name + ": want exactly one scenario file")
	}
	return f, fs.Arg(0), nil
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
	r, err := runner.New(s, runner.Options{Backend: f.backend, Long: f.long, OutDir: f.out, Seed: f.seed})
	if err != nil {
		return err
	}
	cells := selectCells(r.Cells(), f.cells)
	if len(cells) == 0 {
		return fmt.Errorf("run: no cell matches %q", f.cells)
	}
	fmt.Printf("faultlab %s: scenario %s, %d cells, run %s\n  directory %s\n", runner.Version, s.Name,
		len(cells), r.ID, r.Dir)
	bars := newProgress(!f.quiet, cells)
	r.Opts.Progress = bars.update
	var errs []error
	for _, c := range cells {
		if ctx.Err() != nil {
			break
		}
		bars.start(c)
		out, err := r.RunCell(ctx, c)
		bars.finish(c, out, err)
		if err != nil && ctx.Err() == nil {
			errs = append(errs, err)
		}
	}
	bars.wait()
	rep, ferr := r.Finish()
	if rep != nil {
		fmt.Println()
		_ = runner.Table(os.Stdout, rep)
		fmt.Printf("\nresults: %s\n", filepath.Join(r.Dir, "results.json"))
	}
	errs = append(errs, ferr)
	if ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("interrupted: the records so far are in %s", r.Dir))
	}
	for _, v := range rep.Verdicts {
		if !v.Pass {
			errs = append(errs, fmt.Errorf("expectation failed: %s: %s", v.Cell, v.Claim))
		}
	}
	return errors.Join(errs...)
}

func selectCells(all []spec.Cell, list string) []spec.Cell {
	if list == "" {
		return all
	}
	want := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var out []spec.Cell
	for _, c := range all {
		if want[c.Name] {
			out = append(out, c)
		}
	}
	return out
}

func fmtDur(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }
