// Command stability reruns scenarios and says how often each verdict came out the same (the rerun-stability
// figure of docs/reload.md and docs/exhaustion.md):
//
//	go run ./bench/stability [-n 10] [-faultlab bin/faultlab] [-out DIR] scenarios/reload.yaml scenarios/exhaustion.yaml
//
// Run i uses seed i. For each claim it prints how many runs gave each status and how many agreed with the most
// common one; for a port_budget analysis (exhaustion), each cell's prediction error for the first failure
// where one was predicted within the run. It needs root, as `faultlab run` does, and runs the scenarios one
// after another (each run's records stay under -out).
package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/faultlab/faultlab/results"
	"github.com/faultlab/faultlab/results/analyses"
)

func main() {
	n := flag.Int("n", 10, "runs per scenario (seeds 1..n)")
	bin := flag.String("faultlab", "bin/faultlab", "the faultlab binary (make build)")
	out := flag.String("out", "runs/stability", "where the runs' directories go")
	flag.Parse()
	if flag.NArg() == 0 || *n < 1 {
		fmt.Fprintln(os.Stderr, "usage: go run ./bench/stability [-n 10] [-faultlab bin/faultlab] [-out DIR] SCENARIO...")
		os.Exit(2)
	}
	for _, file := range flag.Args() {
		if err := stability(*bin, *out, file, *n); err != nil {
			fmt.Fprintf(os.Stderr, "stability: %s: %v\n", file, err)
			os.Exit(1)
		}
	}
}

// tally counts the statuses one claim got over the runs.
type tally struct {
	claim string
	n     map[results.Status]int
}

func stability(bin, out, file string, n int) error {
	var reps []*results.Report
	for seed := 1; seed <= n; seed++ {
		// Each scenario has a directory of its own: a run lands in dir/<scenario name>/<time-id>/, and two
		// scenarios sharing a directory made the tally read the other one's results.json.
		stem := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
		dir := filepath.Join(out, fmt.Sprintf("seed%d", seed), stem)
		start := time.Now()
		cmd := exec.Command(bin, "run", "-q", "--seed", fmt.Sprint(seed), "--out", dir, file)
		log, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && (ee.ExitCode() == 1 || ee.ExitCode() == 3)) {
			return fmt.Errorf("seed %d: %v\n%s", seed, err, log)
		}
		matches, _ := filepath.Glob(filepath.Join(dir, "*", "*", results.ResultsFile))
		if len(matches) == 0 {
			return fmt.Errorf("seed %d: no results.json under %s\n%s", seed, dir, log)
		}
		slices.Sort(matches)
		rep, err := readReport(matches[len(matches)-1])
		if err != nil {
			return err
		}
		fmt.Printf("%s seed %d: %s in %s\n", file, seed, summary(rep), time.Since(start).Round(time.Second))
		reps = append(reps, rep)
	}
	printTallies(file, reps)
	printPredictions(reps)
	return nil
}

func readReport(path string) (*results.Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r results.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

func summary(r *results.Report) string {
	n := map[results.Status]int{}
	for _, v := range r.Verdicts {
		n[v.Status]++
	}
	return fmt.Sprintf("%d holds, %d fails, %d inconclusive, %d void", n[results.StatusHolds],
		n[results.StatusFails], n[results.StatusInconclusive], n[results.StatusVoid])
}

var order = []results.Status{results.StatusHolds, results.StatusFails, results.StatusInconclusive, results.StatusVoid}

// printTallies prints, per claim, the statuses over the runs and how many agree with the most common one.
func printTallies(file string, reps []*results.Report) {
	var ts []*tally
	byClaim := map[string]*tally{}
	for _, r := range reps {
		for _, v := range r.Verdicts {
			t := byClaim[v.Claim]
			if t == nil {
				t = &tally{claim: v.Claim, n: map[results.Status]int{}}
				byClaim[v.Claim] = t
				ts = append(ts, t)
			}
			t.n[v.Status]++
		}
	}
	fmt.Printf("\n%s: %d runs\n\n| claim | holds | fails | inconclusive | void | same verdict |\n|---|---:|---:|---:|---:|---:|\n",
		file, len(reps))
	same, total := 0, 0
	for _, t := range ts {
		modal := 0
		cols := make([]string, len(order))
		for i, s := range order {
			cols[i] = fmt.Sprint(t.n[s])
			modal = max(modal, t.n[s])
		}
		fmt.Printf("| %s | %s | %d of %d |\n", t.claim, strings.Join(cols, " | "), modal, len(reps))
		same += modal
		total += len(reps)
	}
	if total > 0 {
		fmt.Printf("\nverdicts the same as the claim's most common one: %d of %d (%.1f%%)\n", same, total,
			100*float64(same)/float64(total))
	}
}

// printPredictions prints the port budget's prediction error per cell where a first failure was predicted
// within the run.
func printPredictions(reps []*results.Report) {
	type row struct {
		cell string
		errs []string
	}
	var rows []*row
	byCell := map[string]*row{}
	for _, r := range reps {
		for i := range r.Cells {
			c := &r.Cells[i]
			var budgets analyses.PortBudgets
			if c.Analysis("port_budget", 0, &budgets) != nil {
				continue
			}
			for _, proxy := range slices.Sorted(maps.Keys(budgets)) {
				e := budgets[proxy]
				dur := time.Duration(float64(c.Stats.Attempts) / e.Offered * float64(time.Second))
				if e.PredictedFirst == 0 || e.PredictedFirst > dur {
					continue
				}
				key := c.Name + " (" + proxy + ")"
				rw := byCell[key]
				if rw == nil {
					rw = &row{cell: key}
					byCell[key] = rw
					rows = append(rows, rw)
				}
				msg := "no failure"
				if e.MeasuredFirst > 0 {
					msg = fmt.Sprintf("%+.1f%%", 100*(e.MeasuredFirst.Seconds()/e.PredictedFirst.Seconds()-1))
				}
				rw.errs = append(rw.errs, msg)
			}
		}
	}
	if len(rows) == 0 {
		return
	}
	slices.SortFunc(rows, func(a, b *row) int { return cmp.Compare(a.cell, b.cell) })
	fmt.Println("\nport budget: first failure against the prediction (share estimated before any failure could happen)")
	for _, rw := range rows {
		fmt.Printf("  %s: %s\n", rw.cell, strings.Join(rw.errs, ", "))
	}
}
