package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/faultlab/faultlab/harness/runner"
	"github.com/faultlab/faultlab/harness/spec"
)

// problemsError is check's failure: the problems are printed, the error only counts them (exit status 1).
type problemsError struct {
	file string
	n    int
}

func (e *problemsError) Error() string {
	if e.n == 1 {
		return e.file + ": 1 problem"
	}
	return fmt.Sprintf("%s: %d problems", e.file, e.n)
}

func cmdCheck(ctx context.Context, args []string) error {
	f, file, err := parseCheckFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	return check(ctx, f, file, os.Stdout)
}

// parseCheckFlags parses check's flags, which may come before or after the scenario file.
func parseCheckFlags(args []string, out io.Writer) (*runFlags, string, error) {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(out)
	f := &runFlags{}
	fs.StringVar(&f.backend, "backend", os.Getenv("FAULTLAB_BACKEND"), "netns or docker (default: the scenario's; env FAULTLAB_BACKEND)")
	fs.BoolVar(&f.long, "long", os.Getenv("FAULTLAB_LONG") == "1", "check the long (nightly) mode's cells (env FAULTLAB_LONG=1)")
	fs.StringVar(&f.out, "out", "runs", "base directory the run would write to (its free space is checked; nothing is written)")
	fs.StringVar(&f.cells, "cells", "", "comma-separated cells the run would run (default: all)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: faultlab check FILE [flags]   (flags may also come before FILE)")
		fs.PrintDefaults()
	}
	if err := parseInterspersed(fs, args); err != nil {
		return nil, "", err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return nil, "", errors.New("check: want exactly one scenario file")
	}
	return f, fs.Arg(0), nil
}

// check is everything a run checks before its first cell, and nothing more: the file (spec.Load), the
// names the lab's registries own (spec.Check) and this machine (runner.Preflight). It prints every problem
// as file:line: field: message, or "FILE: ok (...)" with what was checked. It creates nothing: no run
// directory, no namespace that outlives it.
func check(ctx context.Context, f *runFlags, file string, w io.Writer) error {
	s, err := spec.Load(file)
	if err != nil {
		return printProblems(w, file, err)
	}
	checkErr := spec.Check(s, runner.Vocabulary())
	opts := f.options()
	if len(s.Kernels) > 0 { // this machine checks the host's cells; each guest checks its own when it boots
		opts.Kernel = spec.HostKernel
	}
	rep, err := runner.Preflight(ctx, s, opts)
	if err := errors.Join(checkErr, err); err != nil {
		return printProblems(w, file, err)
	}
	if g := s.GuestKernels(); len(g) > 0 {
		rep.Checked = append(rep.Checked, fmt.Sprintf("the cells of kernel(s) %s not here: each guest checks "+
			"its own before they run", strings.Join(g, ", ")))
	}
	fmt.Fprintf(w, "%s: ok (%s, %s backend, checked: structure, kinds, options and names, %s)\n", file,
		cellCount(rep.Cells), rep.Backend, strings.Join(rep.Checked, ", "))
	return nil
}

// printProblems prints the scenario problems in err, sorted by line; an error that holds none (an
// unreadable file, an interrupted check) is returned as it is.
func printProblems(w io.Writer, file string, err error) error {
	var problems []spec.Problem
	var other []error
	for _, e := range causesOf(err) {
		var se *spec.Error
		if errors.As(e, &se) {
			problems = append(problems, se.Problems...)
		} else {
			other = append(other, e)
		}
	}
	if len(other) > 0 {
		return errors.Join(other...)
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
	for _, p := range problems {
		fmt.Fprintln(w, p)
	}
	return &problemsError{file: file, n: len(problems)}
}

func causesOf(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func cellCount(n int) string {
	if n == 1 {
		return "1 cell"
	}
	return fmt.Sprintf("%d cells", n)
}
