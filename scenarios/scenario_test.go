package scenarios

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/runner"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/harness/testutil"
	"github.com/faultlab/faultlab/results"
)

// longMode is the nightly mode: FAULTLAB_LONG=1 runs each scenario's long settings.
func longMode() bool { return os.Getenv("FAULTLAB_LONG") == "1" }

// untilDecidedBudget is FAULTLAB_UNTIL_DECIDED: a budget (e.g. 90m) makes the scenario tests add interleaved
// rounds until every claim is decided or the budget is spent, as `faultlab run --until-decided --budget`
// does; "1" means runner.DefaultBudget. Unset or empty: fixed-size runs.
func untilDecidedBudget() (time.Duration, error) {
	v := os.Getenv("FAULTLAB_UNTIL_DECIDED")
	switch v {
	case "", "0":
		return 0, nil
	case "1":
		return runner.DefaultBudget, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("FAULTLAB_UNTIL_DECIDED=%q: want 1 or a budget such as 90m", v)
	}
	return d, nil
}

// backend is the backend the scenario tests use: FAULTLAB_BACKEND, else each scenario file's own.
func backend() string { return os.Getenv("FAULTLAB_BACKEND") }

// reports keeps each scenario's report per backend ("" = the file's own), so a later test can compare
// backends without running a matrix twice.
var reports = map[string]*results.Report{}

// runScenario runs every cell of a scenario file as a subtest named after the cell (so `-run
// 'Reload/legacy'` selects one), then writes the report and checks the scenario's expectations about the
// cells that ran. cells, when given, selects the cells to run. It returns the report for scenario-specific
// assertions.
func runScenario(t *testing.T, file, backend string, cells ...string) *results.Report {
	t.Helper()
	testutil.RequireRoot(t)
	s, err := spec.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	budget, err := untilDecidedBudget()
	if err != nil {
		t.Fatal(err)
	}
	r, err := runner.New(s, runner.Options{Long: longMode(), OutDir: os.Getenv("FAULTLAB_RUNS"),
		UntilDecided: budget > 0, Budget: budget, Backend: backend, Cells: cells, Progress: func(p runner.Progress) {
			if int(p.Elapsed.Seconds())%5 == 0 {
				t.Logf("%s#%d %s/%s: %d attempts, %d failed, max lag %s", p.Cell, p.Rep, p.Elapsed.Round(1e9),
					p.Duration, p.Load.Launched, p.Load.Failed, p.Load.MaxLag)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("run directory %s (backend %s)", r.Dir, r.Backend())
	rep, err := r.Run(ctx, func(cell spec.Cell, run func() (*runner.CellResult, error)) {
		t.Run(cell.Name, func(t *testing.T) {
			out, err := run()
			if err != nil {
				t.Fatal(err)
			}
			l := out.Load
			t.Logf("%d attempts (%d failed), achieved %.1f/s of %.0f/s, lag p99 %s, %d reloads", l.Launched,
				l.Failed, l.Achieved, l.Target, l.LagP99, out.Reloads)
		})
	})
	if rep == nil {
		t.Fatal(err)
	}
	var md strings.Builder
	_ = results.Markdown(&md, rep)
	t.Logf("results (%s):\n%s", r.Dir, md.String())
	// A claim that does not hold fails the test, an inconclusive one too (with the extra running the verdict
	// says would decide it) unless FAULTLAB_ACCEPT_INCONCLUSIVE=1 or the claim's accept_inconclusive says so.
	unmet, _ := results.Unmet(rep.Verdicts, os.Getenv("FAULTLAB_ACCEPT_INCONCLUSIVE") == "1")
	for _, v := range unmet {
		t.Errorf("%s: %s: %s: %s", v.Status, v.Cell, v.Claim, v.Detail)
	}
	// Every claim assumes the offered open-loop rate: a cell whose generator fell behind measured an
	// overloaded machine, and its verdicts (pass or fail) say nothing about the proxy.
	for _, c := range rep.Cells {
		if s := c.Behind(); s != "" {
			t.Errorf("cell %s: %s", c.Name, s)
		}
	}
	if len(cells) == 0 { // a report of some cells is not the scenario's
		reports[file+"@"+backend] = rep
	}
	return rep
}
