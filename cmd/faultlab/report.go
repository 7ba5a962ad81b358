package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/faultlab/faultlab/results"
)

const reportUsage = `usage: faultlab report [--format md|json|junit|html] [--out FILE] RUN_DIR

Rebuilds the report of a run directory from what it recorded (run.json, each cell's cell.json and
records.jsonl). Without --format and --out it rewrites RUN_DIR/results.json and RUN_DIR/table.md, as the run
did, and prints the table. With --format or --out it writes the report in FORMAT (default: the extension of
FILE when it names a format, else md) to FILE, or to standard output, and changes nothing in RUN_DIR.
`

// reportArgs is a parsed report command line.
type reportArgs struct {
	format string // "" = rewrite the run directory's outputs
	out    string // "" = standard output
	dir    string
}

// cmdReport rebuilds a run directory's report (results.Build) and writes or renders it.
func cmdReport(args []string) error {
	a, err := parseReportArgs(args, os.Stderr)
	if err != nil {
		return err
	}
	if err := report(a, os.Stdout); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// report builds a's run directory's report and rewrites the directory's outputs, printing the table on w,
// or renders it in a.format to a.out or w.
func report(a *reportArgs, w io.Writer) error {
	rep, err := results.Build(a.dir)
	if err != nil {
		return err
	}
	if a.format == "" {
		if err := results.WriteOutputs(a.dir, rep); err != nil {
			return err
		}
		if err := results.Renderers["md"](w, rep); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "\nresults: %s\n", filepath.Join(a.dir, "results.json"))
		return err
	}
	render := results.Renderers[a.format]
	if dr := results.DirRenderers[a.format]; dr != nil {
		render = func(w io.Writer, r *results.Report) error { return dr(w, r, a.dir) }
	}
	if a.out == "" {
		return render(w, rep)
	}
	var buf bytes.Buffer
	if err := render(&buf, rep); err != nil {
		return err
	}
	return writeFileAtomic(a.out, buf.Bytes())
}

// parseReportArgs parses report's flags (anywhere) and its run directory, and checks the format.
func parseReportArgs(args []string, out io.Writer) (*reportArgs, error) {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(out)
	a := &reportArgs{}
	fs.StringVar(&a.format, "format", "", "output format: "+strings.Join(formats(), ", "))
	fs.StringVar(&a.out, "out", "", "write the report to `FILE` instead of standard output")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), reportUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	if err := parseInterspersed(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return nil, errors.New("report: want exactly one run directory")
	}
	a.dir = fs.Arg(0)
	if a.format == "" && a.out != "" {
		a.format = "md"
		if ext := strings.TrimPrefix(filepath.Ext(a.out), "."); slices.Contains(formats(), ext) {
			a.format = ext
		}
	}
	if a.format != "" && !slices.Contains(formats(), a.format) {
		return nil, fmt.Errorf("report: unknown format %q (formats: %s)", a.format, strings.Join(formats(), ", "))
	}
	return a, nil
}

// formats are the names of the report renderers, sorted.
func formats() []string {
	return slices.Sorted(func(yield func(string) bool) {
		for n := range results.Renderers {
			if !yield(n) {
				return
			}
		}
		for n := range results.DirRenderers {
			if !yield(n) {
				return
			}
		}
	})
}

// writeFileAtomic writes path through a temporary file in its directory, renamed into place once complete.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Chmod(0o644), f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeRunJUnit writes the report's verdicts as JUnit XML to path (faultlab run --junit).
func writeRunJUnit(path string, rep *results.Report) error {
	var buf bytes.Buffer
	if err := results.JUnit(&buf, rep); err != nil {
		return err
	}
	return writeFileAtomic(path, buf.Bytes())
}
