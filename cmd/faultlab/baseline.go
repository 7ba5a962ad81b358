package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/faultlab/faultlab/results"
)

const baselineUsage = `usage: faultlab baseline save RUN_DIR --to PATH

Stores a compact baseline of a run (per cell: counts per round, intervals, latency quantiles; the kernel,
provider and service versions) at PATH, for 'faultlab compare PATH RUN_DIR' later. It reads
RUN_DIR/results.json (RUN_DIR may also name that file).
`

// cmdBaseline handles `faultlab baseline save`.
func cmdBaseline(args []string) error {
	to, dir, err := parseBaselineArgs(args, os.Stderr)
	if err != nil {
		return err
	}
	if err := saveBaseline(dir, to, os.Stdout); err != nil {
		return fmt.Errorf("baseline save: %w", err)
	}
	return nil
}

func parseBaselineArgs(args []string, out io.Writer) (to, dir string, err error) {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&to, "to", "", "write the baseline to `PATH` (required)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), baselineUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	if err := parseInterspersed(fs, args); err != nil {
		return "", "", err
	}
	if fs.NArg() != 2 || fs.Arg(0) != "save" || to == "" {
		fs.Usage()
		return "", "", errors.New("baseline: want `save RUN_DIR --to PATH`")
	}
	return to, fs.Arg(1), nil
}

// saveBaseline writes the baseline of the run at dir to path and says what it saved on w.
func saveBaseline(dir, path string, w io.Writer) error {
	rep, err := results.ReadRunReport(dir)
	if err != nil {
		return err
	}
	b, err := results.NewBaseline(rep)
	if err != nil {
		return err
	}
	if err := b.Write(path); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "baseline of %s (%s mode, %d cells, kernel %s) saved to %s\n", b.Scenario, b.Mode,
		len(b.Cells), b.Env.Kernel, path)
	return err
}
