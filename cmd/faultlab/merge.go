package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/faultlab/faultlab/results"
)

// cmdMerge combines the run directories of a sharded run into one (results.Merge) and prints its table.
func cmdMerge(args []string) error {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	out := fs.String("out", "", "the merged run directory, which must not exist (default: "+
		"runs/<scenario>/<UTC time>-merged)")
	accept := fs.Bool("accept-inconclusive", os.Getenv("FAULTLAB_ACCEPT_INCONCLUSIVE") == "1",
		"exit 0 when claims end inconclusive (default: exit 3)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: faultlab merge [--out DIR] SHARD_DIR...   (the run directories of "+
			"`faultlab run --shard I/N`)")
		fs.PrintDefaults()
	}
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("merge: want the shards' run directories")
	}
	dir := *out
	if dir == "" {
		m, err := results.ReadRunMeta(fs.Arg(0))
		if err != nil {
			return err
		}
		dir = filepath.Join("runs", m.Scenario, time.Now().UTC().Format("20060102T150405Z")+"-merged")
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("merge: %w", err)
		}
	}
	rep, err := results.Merge(dir, fs.Args())
	if err != nil {
		return err
	}
	_ = results.Markdown(os.Stdout, rep)
	fmt.Printf("\nmerged: %s\n", filepath.Join(dir, results.ResultsFile))
	return unmetClaims(rep.Verdicts, *accept, false)
}
