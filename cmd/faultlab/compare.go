package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/faultlab/faultlab/results"
)

const compareUsage = `usage: faultlab compare [flags] BASELINE RUN_DIR

Compares a run (RUN_DIR/results.json) with a baseline saved by 'faultlab baseline save', per cell and metric
(bad windows, reset windows): better, same, worse or inconclusive, each with its test and p-values
(docs/reports.md). Prints the comparison in Markdown (or --format); --junit FILE also writes it as JUnit XML.
Refuses a run of another scenario, mode or cell set (exit 2); warns when the kernel, provider or a service's
version differ. Exit 1 when some cell and metric is worse, 0 otherwise.
`

type compareArgs struct {
	format, out, junit string
	opt                results.RegressOptions
	baseline, run      string
}

// cmdCompare handles `faultlab compare`.
func cmdCompare(args []string) error {
	a, err := parseCompareArgs(args, os.Stderr)
	if err != nil {
		return err
	}
	return compare(a, os.Stdout)
}

func parseCompareArgs(args []string, out io.Writer) (*compareArgs, error) {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(out)
	a := &compareArgs{}
	fs.StringVar(&a.format, "format", "md", "output format: "+strings.Join(slices.Sorted(maps.Keys(results.RegressionRenderers)), ", "))
	fs.StringVar(&a.out, "out", "", "write the comparison to `FILE` instead of standard output")
	fs.StringVar(&a.junit, "junit", "", "also write the comparison as JUnit XML to `FILE`")
	fs.Float64Var(&a.opt.Alpha, "alpha", results.DefaultAlpha, "family-wise false-alarm rate of worse (and "+
		"better), and the error rate of same")
	fs.Float64Var(&a.opt.Margin, "margin", results.DefaultMargin, "equivalence margin of same: the odds ratio "+
		"within [1/margin, margin]")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), compareUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	if err := parseInterspersed(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return nil, errors.New("compare: want a baseline and a run directory")
	}
	if results.RegressionRenderers[a.format] == nil {
		return nil, fmt.Errorf("compare: unknown format %q (formats: %s)", a.format,
			strings.Join(slices.Sorted(maps.Keys(results.RegressionRenderers)), ", "))
	}
	if a.opt.Alpha <= 0 || a.opt.Alpha >= 0.5 || a.opt.Margin <= 1 {
		return nil, fmt.Errorf("compare: --alpha %g must be in (0, 0.5) and --margin %g above 1", a.opt.Alpha,
			a.opt.Margin)
	}
	a.baseline, a.run = fs.Arg(0), fs.Arg(1)
	return a, nil
}

// compareError is a comparison that found a worse cell (exit 1) or refused to compare (exit 2).
type compareError struct {
	msg  string
	code int
}

func (e *compareError) Error() string { return e.msg }
func (e *compareError) ExitCode() int { return e.code }

// compare runs the comparison a asks for and writes it to a.out or w.
func compare(a *compareArgs, w io.Writer) error {
	b, err := results.ReadBaseline(a.baseline)
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	rep, err := results.ReadRunReport(a.run)
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	g, err := results.CompareBaseline(b, rep, a.opt)
	var mm *results.Mismatch
	if errors.As(err, &mm) {
		return &compareError{fmt.Sprintf("compare %s with %s: %v", a.run, a.baseline, err), 2}
	} else if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	for _, warn := range g.Warnings {
		fmt.Fprintf(os.Stderr, "faultlab compare: warning: %s\n", warn)
	}
	var buf bytes.Buffer
	if err := results.RegressionRenderers[a.format](&buf, g); err != nil {
		return err
	}
	if a.out != "" {
		err = writeFileAtomic(a.out, buf.Bytes())
	} else {
		_, err = w.Write(buf.Bytes())
	}
	if err != nil {
		return err
	}
	if a.junit != "" {
		var j bytes.Buffer
		if err := results.RegressionJUnit(&j, g); err != nil {
			return err
		}
		if err := writeFileAtomic(a.junit, j.Bytes()); err != nil {
			return err
		}
	}
	if g.Worse() {
		var lines []string
		for _, r := range g.Results {
			if r.Status == results.RegressWorse {
				lines = append(lines, fmt.Sprintf("%s: %s: %s", r.Cell, r.Metric, r.Detail))
			}
		}
		return &compareError{fmt.Sprintf("%s is worse than its baseline %s in %d cell metric(s):\n  %s",
			a.run, a.baseline, len(lines), strings.Join(lines, "\n  ")), 1}
	}
	return nil
}
