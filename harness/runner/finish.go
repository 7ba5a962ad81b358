package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/results"
	"golang.org/x/sys/unix"
)

// Version is the lab's version, set at build time with -ldflags "-X .../runner.Version=...".
var Version = "dev"

// Finish summarises every cell that ran (repetitions pooled), checks the scenario's expectations, and writes
// results.json, table.md and env.json into the run directory. It can be called after a partial run.
func (r *Runner) Finish() (*results.Report, error) {
	r.mu.Lock()
	outs := append([]*CellOutput(nil), r.outputs...)
	r.mu.Unlock()
	rep := &results.Report{Scenario: r.Scenario.Name, Started: r.Started, Finished: time.Now().UTC(),
		Env: r.envInfo(outs)}
	for _, name := range cellNames(outs) {
		rep.Cells = append(rep.Cells, r.cellReport(name, outs))
	}
	stats := rep.StatsByCell()
	var list []*results.CellStats
	for _, c := range rep.Cells {
		list = append(list, c.Stats)
	}
	rep.Comparisons = results.CompareAll(list, "legacy")
	rep.Verdicts = results.Check(r.expectations(stats), stats)
	var md strings.Builder
	errs := []error{rep.WriteJSON(filepath.Join(r.Dir, "results.json")), r.writeJSON("env.json", rep.Env),
		results.Markdown(&md, rep, "legacy")}
	errs = append(errs, os.WriteFile(filepath.Join(r.Dir, "table.md"), []byte(md.String()), 0o644))
	return rep, errors.Join(errs...)
}

// expectations are the scenario's claims about the cells that ran (a partial run, e.g. `-run Reload/legacy`,
// leaves out claims about cells it did not run).
func (r *Runner) expectations(ran map[string]*results.CellStats) []results.Expectation {
	var out []results.Expectation
	for _, e := range r.Scenario.Expect {
		if ran[e.Cell] == nil || (e.BetterThan != "" && ran[e.BetterThan] == nil) ||
			(e.FewerResetsThan != "" && ran[e.FewerResetsThan] == nil) {
			continue
		}
		out = append(out, results.Expectation(e))
	}
	return out
}

func cellNames(outs []*CellOutput) []string {
	var names []string
	seen := map[string]bool{}
	for _, o := range outs {
		if !seen[o.Cell.Name] {
			seen[o.Cell.Name] = true
			names = append(names, o.Cell.Name)
		}
	}
	return names
}

// cellReport pools the repetitions of one cell.
func (r *Runner) cellReport(name string, outs []*CellOutput) results.CellReport {
	var recs []results.Record
	var reloads []results.ReloadEvent
	cr := results.CellReport{Name: name}
	var dur time.Duration
	for _, o := range outs {
		if o.Cell.Name != name {
			continue
		}
		cr.Reps++
		recs = append(recs, o.Records...)
		reloads = append(reloads, o.Reloads...)
		cr.Mitigations = o.Cell.Mitigations
		cr.Strategy = strategyOf(&o.Cell.Scenario)
		cr.Notes = append(cr.Notes, o.Notes...)
		for k, v := range o.Probes {
			if cr.Probes == nil {
				cr.Probes = map[string]any{}
			}
			cr.Probes[fmt.Sprintf("rep%d/%s", o.Cell.Rep, k)] = v
		}
		dur = o.Cell.Scenario.Workload.Duration
		l := o.Load
		cr.Load = append(cr.Load, results.LoadReport{Target: l.Target, Achieved: l.Achieved, LagP50: l.LagP50,
			LagP99: l.LagP99, LagMax: l.LagMax})
	}
	cr.Stats = results.Summarize(name, recs, reloads, results.SummaryOptions{
		Window: results.WindowOptions{End: dur}, Seed: uint64(r.Scenario.Seed)})
	return cr
}

func strategyOf(s *spec.Scenario) string {
	if s.Reload == nil {
		return "none"
	}
	for _, sv := range s.Services {
		if sv.Name == s.Reload.Service {
			return sv.Reload
		}
	}
	return ""
}

// envInfo describes where the run happened: kernel, provider, daemon versions, sysctls as read back.
func (r *Runner) envInfo(outs []*CellOutput) map[string]any {
	var u unix.Utsname
	_ = unix.Uname(&u)
	env := map[string]any{
		"kernel":            unix.ByteSliceToString(u.Release[:]),
		"provider":          r.provider.Name(),
		"impairment_engine": "none (no impairment in this run)",
		"faultlab":          Version,
		"go":                runtime.Version(),
		"cpus":              runtime.NumCPU(),
		"mode":              map[bool]string{false: "quick", true: "long"}[r.Opts.Long],
		"seed":              r.Scenario.Seed,
		"run_dir":           r.Dir,
	}
	sysctls := map[string]any{}
	for _, o := range outs {
		for k, v := range o.Info {
			if k == "sysctls" {
				sysctls[fmt.Sprintf("%s/rep%d", o.Cell.Name, o.Cell.Rep)] = v
				continue
			}
			env[k] = v
		}
	}
	env["sysctls"] = sysctls
	return env
}
