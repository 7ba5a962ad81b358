// Package runner is the conductor: for each cell of a scenario it builds the lab through a provider, starts
// the services, runs the faults and the workload, streams every output into the run directory, runs the
// cell's analyses, and at the end builds the report from the run directory alone (results.Build). It knows
// no scenario family: what a family needs beyond the generic records is an analysis (results/analyses).
// Only cmd/faultlab and scenarios import it.
package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/loadgen"
	"github.com/faultlab/faultlab/results"
	"golang.org/x/sys/unix"
)

// Version is the lab's version, set at build time with -ldflags "-X .../runner.Version=...".
var Version = "dev"

// Options tune a run. The zero value runs quick mode into ./runs with the scenario's backend and seed.
type Options struct {
	Backend string // overrides the scenario's backend when set
	Long    bool   // nightly mode: the scenario's long overrides
	OutDir  string // base directory of run directories (default "runs")
	Seed    int64  // overrides the scenario's seed when non-zero
	// Cells selects cells by name (default: all); an unknown name is an error naming the cells.
	Cells []string
	// Progress receives a line of progress about once a second while a cell runs (nil: silent).
	Progress func(Progress)
	// UntilDecided runs interleaved rounds (each row one block of the scenario's duration/rounds per round)
	// until every claim is decided, the last planned look is reached or Budget cannot hold another round: a
	// group-sequential design (results.CheckSequential) whose number of looks is fixed from Budget before the
	// first round.
	UntilDecided bool
	// Budget bounds an UntilDecided run (default DefaultBudget).
	Budget time.Duration
	// Shard runs one slice of the cells (shard.go); nil runs them all.
	Shard *Shard
	// Kernel runs the cells of one of the scenario's kernels (kernels.go: spec.Scenario.Kernels), as one part
	// of the whole run; it must be set for a scenario that names kernels and is "" otherwise.
	Kernel string
}

// DefaultBudget is the time an UntilDecided run may take when Options.Budget is not set.
const DefaultBudget = 30 * time.Minute

// cellOverhead is the planned time a cell's block takes beyond its load: building the lab, starting the
// daemons, the warm-up, the tail wait and teardown (a few seconds on netns; the budget check at each round
// boundary uses the measured round time, so a wrong guess changes how many looks are planned, not the
// budget).
const cellOverhead = 6 * time.Second

// Progress is a snapshot of the running cell.
type Progress struct {
	Cell              string
	Rep               int
	Elapsed, Duration time.Duration
	Load              loadgen.StatsSnapshot
	Reloads           int
}

// Runner runs the cells of one scenario into one run directory.
type Runner struct {
	Scenario *spec.Scenario
	Opts     Options
	ID       string // short run id: names start with harness.PrefixBase+ID
	Dir      string
	Started  time.Time
	// Refused are the cells of this kernel's part that its kernel cannot run, one line each (preflightPart).
	Refused []string

	provider harness.Provider
	cells    []spec.Cell
	mu       sync.Mutex
	meta     results.RunMeta
	live     *liveCell
}

// New checks the scenario against the lab's registries (before any work: a bad kind, option or analysis
// name is an error with the file and line), picks the provider, and creates the run directory with the
// resolved scenario and run.json.
func New(s *spec.Scenario, opts Options) (*Runner, error) {
	if err := spec.Check(s, Vocabulary()); err != nil {
		return nil, err
	}
	if opts.OutDir == "" {
		opts.OutDir = "runs"
	}
	if opts.Seed != 0 {
		s.Seed = opts.Seed
	}
	expanded := spec.Expand(s, opts.Long)
	var plan *results.SequentialPlan
	if opts.UntilDecided {
		var err error
		if expanded, plan, err = sequentialCells(s, opts, expanded); err != nil {
			return nil, err
		}
	}
	if err := checkKernel(s, opts); err != nil {
		return nil, err
	}
	refused, err := preflightPart(s, opts)
	if err != nil {
		return nil, err
	}
	backend := s.Backend
	if opts.Backend != "" {
		backend = opts.Backend
	}
	p, err := newProvider(backend, s)
	if err != nil {
		return nil, err
	}
	cells, err := selectCells(expanded, opts.Cells)
	if err != nil {
		return nil, err
	}
	var shard *results.ShardMeta
	if opts.Kernel != "" {
		if cells, shard, err = kernelShard(s, opts, cells, refused); err != nil {
			return nil, err
		}
	}
	if opts.Shard != nil {
		if opts.UntilDecided {
			return nil, errors.New("--shard and --until-decided cannot go together: the sequential design looks " +
				"at every cell after each round, in one run")
		}
		all := cells
		var unit string
		if cells, unit, err = shardCells(all, *opts.Shard); err != nil {
			return nil, err
		}
		if shard, err = shardMeta(s, opts, all, unit); err != nil {
			return nil, err
		}
	}
	r := &Runner{Scenario: s, Opts: opts, ID: newID(), Started: time.Now().UTC(), provider: p, cells: cells}
	for _, c := range slices.Sorted(maps.Keys(refused)) {
		r.Refused = append(r.Refused, refused[c])
	}
	r.Dir = filepath.Join(opts.OutDir, s.Name, r.Started.Format("20060102T150405Z")+"-"+r.ID)
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("run dir: %w", err)
	}
	if err := r.writeJSON("scenario.json", s); err != nil {
		return nil, err
	}
	if src, err := os.ReadFile(s.File); err == nil {
		_ = os.WriteFile(filepath.Join(r.Dir, filepath.Base(s.File)), src, 0o644)
	}
	r.meta = results.RunMeta{Scenario: s.Name, ID: r.ID, Started: r.Started, Mode: mode(opts.Long), Seed: s.Seed,
		Reference: s.Reference, Env: r.envInfo()}
	for _, e := range s.Expect {
		r.meta.Expect = append(r.meta.Expect, results.Expectation(e))
	}
	r.meta.Cells = plannedCells(s, cells)
	r.meta.Sequential = plan
	r.meta.Shard = shard
	r.meta.Warnings = r.Refused
	r.meta.Axes, r.meta.CellAxes = axesMeta(s, cells)
	if err := results.WriteRunMeta(r.Dir, &r.meta); err != nil {
		return nil, err
	}
	return r, nil
}

// plannedCells lists the cells for run.json in matrix order, repetitions (rounds) inner, whatever order they
// run in: the report's rows follow the scenario file, not the seeded order of interleaved rounds.
func plannedCells(s *spec.Scenario, cells []spec.Cell) []results.CellRef {
	row := map[string]int{}
	for i, m := range s.Matrix {
		row[m.Name] = i
	}
	out := make([]results.CellRef, 0, len(cells))
	for _, c := range cells {
		out = append(out, results.CellRef{Name: c.Name, Rep: c.Rep})
	}
	slices.SortStableFunc(out, func(a, b results.CellRef) int {
		if d := row[a.Name] - row[b.Name]; d != 0 {
			return d
		}
		return a.Rep - b.Rep
	})
	return out
}

func mode(long bool) string {
	if long {
		return "long"
	}
	return "quick"
}

// selectCells keeps the named cells, in run order; none named keeps all.
func selectCells(all []spec.Cell, names []string) ([]spec.Cell, error) {
	if len(names) == 0 {
		return all, nil
	}
	var out []spec.Cell
	known := map[string]bool{}
	for _, c := range all {
		known[c.Name] = true
		if slices.Contains(names, c.Name) {
			out = append(out, c)
		}
	}
	for _, n := range names {
		if !known[n] {
			var list []string
			for _, c := range all {
				if !slices.Contains(list, c.Name) {
					list = append(list, c.Name)
				}
			}
			return nil, fmt.Errorf("no cell %q (cells: %s)", n, strings.Join(list, ", "))
		}
	}
	return out, nil
}

func newID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Cells are the cells this run runs, in order (the scenario's, in the runner's mode, as selected).
func (r *Runner) Cells() []spec.Cell { return r.cells }

// Backend names the provider the runner builds labs with.
func (r *Runner) Backend() string { return r.provider.Name() }

// Run is the one cell loop of the lab (the CLI and `go test` both use it): it runs every cell in order and
// then builds the report from the run directory. each, when not nil, wraps each cell's run (a test makes it
// a subtest; the CLI draws progress): it must call run once. A failed cell is recorded and the run goes on;
// ctx cancellation stops it, and the report of what ran is still written.
func (r *Runner) Run(ctx context.Context, each func(cell spec.Cell, run func() (*CellResult, error))) (*results.Report, error) {
	if each == nil {
		each = func(_ spec.Cell, run func() (*CellResult, error)) { _, _ = run() }
	}
	var errs []error
	seq := newRoundClock(r.Opts.Budget)
	for _, cell := range r.cells {
		if ctx.Err() != nil {
			break
		}
		if r.Opts.UntilDecided && seq.boundary(cell.Rep) {
			if stop := r.sequentialStop(seq); stop != "" {
				r.setStopped(stop)
				break
			}
		}
		each(cell, func() (*CellResult, error) {
			res, err := r.RunCell(ctx, cell)
			if err != nil && ctx.Err() == nil {
				errs = append(errs, err)
			}
			return res, err
		})
	}
	if r.Opts.UntilDecided {
		if ctx.Err() != nil {
			r.setStopped("interrupted")
		}
		r.setStopped("last look")
	}
	rep, err := r.Finish()
	errs = append(errs, err)
	if ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("interrupted: the records so far are in %s", r.Dir))
	}
	return rep, errors.Join(errs...)
}

// Finish records the end of the run in run.json, builds the report from the run directory (results.Build,
// exactly what `faultlab report` does) and writes results.json and table.md. It can be called after a
// partial run.
func (r *Runner) Finish() (*results.Report, error) {
	r.mu.Lock()
	r.meta.Finished = time.Now().UTC()
	meta := r.meta
	r.mu.Unlock()
	if err := results.WriteRunMeta(r.Dir, &meta); err != nil {
		return nil, err
	}
	rep, err := results.Build(r.Dir)
	if err != nil {
		return nil, err
	}
	return rep, results.WriteOutputs(r.Dir, rep)
}

// envInfo describes where the run happens: kernel, provider, lab version. Each cell adds what it learns
// (daemon versions, impairment engine, sysctls as read back) to its cell.json; the report merges them.
func (r *Runner) envInfo() map[string]any {
	var u unix.Utsname
	_ = unix.Uname(&u)
	return map[string]any{
		"kernel":            unix.ByteSliceToString(u.Release[:]),
		"machine":           unix.ByteSliceToString(u.Nodename[:]),
		"provider":          r.provider.Name(),
		"impairment_engine": "none (no impairment in this run)",
		"faultlab":          Version,
		"go":                runtime.Version(),
		"cpus":              runtime.NumCPU(),
		"mode":              mode(r.Opts.Long),
		"seed":              r.Scenario.Seed,
		"run_dir":           r.Dir,
	}
}

func (r *Runner) writeJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(r.Dir, name), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
