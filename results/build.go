package results

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Build reads a run directory and returns its report. For each planned cell (RunMeta.Cells, repetitions of a
// cell pooled, cells in the order of their first appearance) whose repetition directories exist, it streams
// records.jsonl through one Summary per cell, with the cell's reloads.jsonl events, so its memory does not grow
// with the number of attempts. A repetition without cell.json (the run was killed in it) is summarised from its
// records and noted as incomplete; a truncated last line keeps the records before it, with a note. Problems in
// a cell's files become notes of that cell; only an unreadable run.json is an error. The result depends on the
// directory's content alone: building twice gives identical reports (the bootstrap is seeded by RunMeta.Seed).
func Build(runDir string) (*Report, error) {
	meta, err := ReadRunMeta(runDir)
	if err != nil {
		return nil, fmt.Errorf("build report: %w", err)
	}
	r := &Report{Schema: Schema, Scenario: meta.Scenario, Started: meta.Started, Finished: meta.Finished,
		Reference: meta.Reference, Env: maps.Clone(meta.Env), Axes: meta.Axes, Shard: meta.Shard,
		Shards: meta.Shards, Warnings: meta.Warnings}
	opt := SummaryOptions{Seed: uint64(meta.Seed)}
	var metas []*CellMeta
	shardOf := map[string][]int{}
	kernelOf := map[int]string{}
	for _, sh := range meta.Shards {
		kernelOf[sh.Index] = sh.Kernel
		for _, c := range sh.Cells {
			if !slices.Contains(shardOf[c.Name], sh.Index) {
				shardOf[c.Name] = append(shardOf[c.Name], sh.Index)
			}
		}
	}
	for _, pc := range plannedCells(meta.Cells) {
		b := cellBuilder{runDir: runDir, name: pc.name, multi: len(pc.reps) > 1}
		c, ms := b.build(pc.reps, opt)
		if c != nil {
			c.Axes, c.Shards = meta.CellAxes[pc.name], shardOf[pc.name]
			if len(c.Shards) > 0 {
				c.Kernel = kernelOf[c.Shards[0]]
			}
			r.Cells = append(r.Cells, *c)
			metas = append(metas, ms...)
		}
	}
	r.Env = mergeEnv(r.Env, metas)
	stats := r.StatsByCell()
	list := make([]*CellStats, 0, len(r.Cells))
	for _, c := range r.Cells {
		list = append(list, c.Stats)
	}
	r.AlongAxes = CompareAlongAxes(meta.Axes, r.Cells)
	if meta.Reference != "" {
		r.Comparisons = CompareAll(list, meta.Reference)
		if ref := stats[meta.Reference]; ref != nil {
			r.Drift = ref.Drift
		}
	}
	exps := ranExpectations(meta.Expect, stats)
	if meta.Sequential == nil {
		r.Verdicts = Check(exps, stats)
		return r, nil
	}
	r.Verdicts = CheckSequential(exps, stats, *meta.Sequential)
	r.Sequential = sequentialReport(*meta.Sequential, list, r.Verdicts)
	if !meta.Finished.IsZero() {
		r.Sequential.Elapsed = meta.Finished.Sub(meta.Started).Round(time.Second).String()
	}
	return r, nil
}

// sequentialReport says how far a sequential run got and whether more rounds could decide anything.
func sequentialReport(plan SequentialPlan, cells []*CellStats, vs []Verdict) *SequentialReport {
	maxLooks := max(plan.MaxLooks, 1)
	s := &SequentialReport{Rule: fmt.Sprintf(SequentialRule, maxLooks, maxLooks), MaxLooks: maxLooks,
		Looks: looksRun(cells...), Budget: plan.Budget, Stopped: plan.Stopped}
	for _, v := range vs {
		if v.MoreData {
			s.Undecided++
		}
	}
	s.Done = s.Undecided == 0 || s.Looks >= maxLooks
	return s
}

// plannedCell is one cell of the plan and its repetitions, in run order.
type plannedCell struct {
	name string
	reps []int
}

// plannedCells groups the planned repetitions by cell, cells in the order of their first appearance.
func plannedCells(refs []CellRef) []plannedCell {
	var out []plannedCell
	index := map[string]int{}
	seen := map[CellRef]bool{}
	for _, ref := range refs {
		if seen[ref] {
			continue
		}
		seen[ref] = true
		i, ok := index[ref.Name]
		if !ok {
			i = len(out)
			index[ref.Name] = i
			out = append(out, plannedCell{name: ref.Name})
		}
		out[i].reps = append(out[i].reps, ref.Rep)
	}
	return out
}

// ranExpectations are the claims about cells that ran: a partial run (e.g. `-run Reload/legacy`) leaves out
// the claims about cells it did not run, and those comparing with them.
func ranExpectations(exps []Expectation, ran map[string]*CellStats) []Expectation {
	var out []Expectation
	for _, e := range exps {
		if ran[e.Cell] == nil || (e.BetterThan != "" && ran[e.BetterThan] == nil) ||
			(e.FewerResetsThan != "" && ran[e.FewerResetsThan] == nil) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// DiffersByCell is the environment's entry for a value that differs between the cells (a daemon's version:
// each cell's services give its own; a cell's own record, e.g. syn_hold: its results).
const DiffersByCell = "differs by cell (see each cell's services)"

// mergeEnv adds the repetitions' Info to the run's environment: "sysctls" (as read back) are collected by
// "<cell>/rep<N>" under env["sysctls"]; any other key is copied, and becomes DiffersByCell when its value
// differs between them (a daemon's version, or a mitigation's record such as syn_hold in several cells).
func mergeEnv(env map[string]any, metas []*CellMeta) map[string]any {
	sysctls := map[string]any{}
	for _, m := range metas {
		for k, v := range m.Info {
			if env == nil {
				env = map[string]any{}
			}
			if k == "sysctls" {
				sysctls[fmt.Sprintf("%s/rep%d", m.Cell, m.Rep)] = v
				continue
			}
			if old, seen := env[k]; seen && jsonString(old) != jsonString(v) {
				v = DiffersByCell // e.g. the daemons of two guests' suites in a run under several kernels
			}
			env[k] = v
		}
	}
	if len(sysctls) > 0 {
		env["sysctls"] = sysctls
	}
	return env
}

// cellBuilder builds the report of one cell from its repetitions' directories.
type cellBuilder struct {
	runDir string
	name   string
	multi  bool // more than one repetition planned: Build's notes name the repetition
}

// repDir is one repetition that ran: its directory, its cell.json (nil when missing) and its notes.
type repDir struct {
	rep   int
	dir   string
	meta  *CellMeta
	notes []string
}

// build returns the cell's report and the cell.json of its repetitions, or nil when no repetition ran.
func (b *cellBuilder) build(reps []int, opt SummaryOptions) (*CellReport, []*CellMeta) {
	var dirs []repDir
	for _, rep := range reps {
		dir := CellDir(b.runDir, b.name, rep)
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		dirs = append(dirs, repDir{rep: rep, dir: dir})
	}
	if len(dirs) == 0 {
		return nil, nil
	}
	c := &CellReport{Name: b.name, Reps: len(dirs)}
	var reloads []ReloadEvent
	var metas []*CellMeta
	for i := range dirs {
		d := &dirs[i]
		d.meta = b.readMeta(d)
		reloads = append(reloads, b.readReloads(d)...)
		if d.meta != nil {
			metas = append(metas, d.meta)
			opt.Window.End = max(opt.Window.End, d.meta.Duration)
		}
	}
	sum := NewSummary(b.name, reloads, opt)
	var analysisNotes []string
	for i := range dirs {
		d := &dirs[i]
		b.readRecords(d, sum)
		if d.meta != nil {
			analysisNotes = append(analysisNotes, b.addMeta(c, d)...)
		}
	}
	c.Stats = sum.Close()
	c.Stats.Storm = c.Stats.Storm || c.Storm
	for _, d := range dirs {
		c.Notes = append(c.Notes, d.notes...)
	}
	c.Notes = append(c.Notes, analysisNotes...)
	return c, metas
}

// note records a note about a repetition; it names the repetition when the cell has several.
func (b *cellBuilder) note(d *repDir, format string, args ...any) {
	d.notes = append(d.notes, b.repPrefix(d.rep)+fmt.Sprintf(format, args...))
}

func (b *cellBuilder) repPrefix(rep int) string {
	if !b.multi {
		return ""
	}
	return fmt.Sprintf("rep%d: ", rep)
}

// rel shortens the run directory out of an error, so a report does not depend on where the run lies.
func (b *cellBuilder) rel(err error) string {
	return strings.ReplaceAll(err.Error(), b.runDir+string(filepath.Separator), "")
}

// readMeta reads a repetition's cell.json, noting it when it is missing or unreadable.
func (b *cellBuilder) readMeta(d *repDir) *CellMeta {
	m, err := ReadCellMeta(d.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		b.note(d, "incomplete: no %s (the run ended inside this cell)", CellFile)
		return nil
	case err != nil:
		b.note(d, "incomplete: %s", b.rel(err))
		return nil
	}
	m.Cell, m.Rep = b.name, d.rep // the directory is the truth
	d.notes = append(d.notes, m.Notes...)
	if m.Error != "" {
		b.note(d, "failed: %s", m.Error)
	}
	return m
}

// readReloads reads a repetition's reloads.jsonl (none when it does not exist).
func (b *cellBuilder) readReloads(d *repDir) []ReloadEvent {
	evs, err := ReadReloads(filepath.Join(d.dir, ReloadsFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case errors.Is(err, ErrTruncated):
		b.note(d, "%s: truncated last line (a killed run): kept the %d reloads before it", ReloadsFile,
			len(evs))
	case err != nil:
		b.note(d, "%s: kept the %d reloads read before an error: %s", ReloadsFile, len(evs), b.rel(err))
	}
	for i := range evs {
		evs[i].Cell, evs[i].Rep = b.name, d.rep
	}
	return evs
}

// readRecords streams a repetition's records.jsonl into sum.
func (b *cellBuilder) readRecords(d *repDir, sum *Summary) {
	n := 0
	err := ReadRecords(filepath.Join(d.dir, RecordsFile), func(r *Record) error {
		r.Cell, r.Rep = b.name, d.rep
		sum.Add(r)
		n++
		return nil
	})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if d.meta != nil && d.meta.Error == "" {
			b.note(d, "no %s", RecordsFile)
		}
	case errors.Is(err, ErrTruncated):
		b.note(d, "%s: truncated last line (a killed run): kept the %d records before it", RecordsFile, n)
	case err != nil:
		b.note(d, "%s: kept the %d records read before an error: %s", RecordsFile, n, b.rel(err))
	}
}

// addMeta adds what a repetition's cell.json says to the cell, and returns its analyses' summary lines.
func (b *cellBuilder) addMeta(c *CellReport, d *repDir) []string {
	m := d.meta
	if c.Strategy == "" {
		c.Strategy = m.Strategy
	}
	if c.Mitigations == nil {
		c.Mitigations = m.Mitigations
	}
	if c.Services == nil {
		c.Services = m.Services
	}
	c.Storm = c.Storm || m.Storm
	c.Load = append(c.Load, m.Load)
	var lines []string
	for _, a := range m.Analyses {
		a.Rep = d.rep
		c.Analyses = append(c.Analyses, a)
		if a.Summary != "" {
			lines = append(lines, b.repPrefix(d.rep)+a.Name+": "+a.Summary)
		}
	}
	return lines
}
