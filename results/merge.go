package results

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ShardMeta describes one shard of a sharded run (faultlab run --shard I/N).
type ShardMeta struct {
	Index int `json:"index"` // 1..Count
	Count int `json:"count"`
	// Unit is what the shards split: "round" or "repetition" (each shard runs every cell in its rounds, so the
	// comparisons, stratified by round, stay within one machine) or "cell".
	Unit string `json:"unit"`
	// Plan fingerprints the whole run (resolved scenario, mode, seed, every cell and repetition with its
	// seed): the shards of one run have the same, and merge refuses others.
	Plan         string `json:"plan"`
	PlannedCells int    `json:"planned_cells"` // cell repetitions in the whole run
	// Order is the whole run's cells in plan order (the merged report's row order).
	Order []string `json:"order,omitempty"`
	// In a merged run: the shard's run id and directory, its machine and kernel, the cell repetitions it
	// ran and its whole environment.
	ID      string         `json:"id,omitempty"`
	Dir     string         `json:"dir,omitempty"`
	Machine string         `json:"machine,omitempty"`
	Kernel  string         `json:"kernel,omitempty"`
	Cells   []CellRef      `json:"cells,omitempty"`
	Env     map[string]any `json:"env,omitempty"`
}

// Merge combines the run directories of the shards of one run into a new run directory out (which must not
// exist) and builds its report: run.json lists every shard's cells, each marked with its shard; the shards'
// cell directories are linked (or copied) in; results.json and table.md are built from it like any run's.
// Verdicts are computed over all shards together; the comparisons are stratified by round, so with shards by
// round (or repetition) every stratum lies within one shard and machine.
//
// Merge refuses directories that are not shards, shards of different runs (scenario, plan, shard count) and
// two shards with the same index or the same cell repetition. It warns, in the report, about missing or
// unfinished shards, shards on different kernels or lab versions, and shards split by cell (cells of different
// shards are then compared across machines).
func Merge(out string, dirs []string) (*Report, error) {
	shards, err := readShards(dirs)
	if err != nil {
		return nil, err
	}
	meta, warnings := mergedMeta(shards)
	meta.Warnings = warnings
	if err := os.Mkdir(out, 0o755); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	for _, sh := range shards {
		if err := linkCells(out, sh.dir, sh.meta.Cells); err != nil {
			return nil, err
		}
	}
	if err := WriteRunMeta(out, meta); err != nil {
		return nil, err
	}
	rep, err := Build(out)
	if err != nil {
		return nil, err
	}
	return rep, WriteOutputs(out, rep)
}

type shardRun struct {
	dir  string
	meta *RunMeta
}

// readShards reads the shards' run.json and refuses what cannot be merged; shards come back by index.
func readShards(dirs []string) ([]shardRun, error) {
	if len(dirs) == 0 {
		return nil, errors.New("merge: no shard directories")
	}
	var shards []shardRun
	var errs []error
	for _, d := range dirs {
		m, err := ReadRunMeta(d)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("merge: %w", err))
		case m.Shard == nil:
			errs = append(errs, fmt.Errorf("merge: %s is not a shard (run it with --shard I/N)", d))
		default:
			shards = append(shards, shardRun{dir: d, meta: m})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.SortFunc(shards, func(a, b shardRun) int { return a.meta.Shard.Index - b.meta.Shard.Index })
	first := shards[0]
	seen := map[string]string{} // cell/rep -> shard dir
	for i, sh := range shards {
		m, f := sh.meta, first.meta
		switch {
		case m.Scenario != f.Scenario:
			errs = append(errs, fmt.Errorf("merge: %s is scenario %s, %s is %s", sh.dir, m.Scenario, first.dir, f.Scenario))
		case m.Shard.Plan != f.Shard.Plan || m.Shard.Count != f.Shard.Count:
			errs = append(errs, fmt.Errorf("merge: %s (plan %s, %d shards) and %s (plan %s, %d shards) are shards of "+
				"different runs: the scenario, --set, mode, seed or selected cells differ", sh.dir, m.Shard.Plan,
				m.Shard.Count, first.dir, f.Shard.Plan, f.Shard.Count))
		case i > 0 && m.Shard.Index == shards[i-1].meta.Shard.Index:
			errs = append(errs, fmt.Errorf("merge: %s and %s are both shard %d/%d", shards[i-1].dir, sh.dir,
				m.Shard.Index, m.Shard.Count))
		}
		for _, c := range m.Cells {
			k := fmt.Sprintf("%s/rep%d", c.Name, c.Rep)
			if other, dup := seen[k]; dup {
				errs = append(errs, fmt.Errorf("merge: %s ran in %s and in %s", k, other, sh.dir))
			}
			seen[k] = sh.dir
		}
	}
	return shards, errors.Join(errs...)
}

// mergedMeta is the run.json of the merge, and the warnings about the shards.
func mergedMeta(shards []shardRun) (*RunMeta, []string) {
	f := shards[0].meta
	m := &RunMeta{Scenario: f.Scenario, ID: "merged", Started: f.Started, Mode: f.Mode, Seed: f.Seed,
		Reference: f.Reference, Expect: f.Expect, Axes: f.Axes, Finished: f.Finished, CellAxes: map[string]map[string]string{}}
	var warnings, unfinished []string
	present := map[int]bool{}
	envs := make([]map[string]any, len(shards))
	for i, sh := range shards {
		s := *sh.meta.Shard
		present[s.Index] = true
		s.ID, s.Dir, s.Env, s.Cells = sh.meta.ID, sh.dir, sh.meta.Env, sh.meta.Cells
		s.Machine, s.Kernel = envString(sh.meta.Env, "machine"), envString(sh.meta.Env, "kernel")
		s.Order = nil
		m.Shards = append(m.Shards, s)
		m.ID += "-" + sh.meta.ID
		envs[i] = sh.meta.Env
		if sh.meta.Started.Before(m.Started) {
			m.Started = sh.meta.Started
		}
		if sh.meta.Finished.IsZero() {
			unfinished = append(unfinished, fmt.Sprintf("%d", s.Index))
		} else if !m.Finished.IsZero() && sh.meta.Finished.After(m.Finished) {
			m.Finished = sh.meta.Finished
		}
		m.Cells = append(m.Cells, sh.meta.Cells...)
		warnings = append(warnings, sh.meta.Warnings...) // e.g. the cells a kernel refused
		for c, levels := range sh.meta.CellAxes {
			m.CellAxes[c] = levels
		}
	}
	if len(unfinished) > 0 {
		m.Finished = time.Time{}
		warnings = append(warnings, fmt.Sprintf("shard(s) %s did not finish: their cells are reported as far as "+
			"they ran", strings.Join(unfinished, ", ")))
	}
	order := f.Shard.Order
	slices.SortStableFunc(m.Cells, func(a, b CellRef) int {
		return cmp.Or(slices.Index(order, a.Name)-slices.Index(order, b.Name), a.Rep-b.Rep)
	})
	var missing []string
	for i := 1; i <= f.Shard.Count; i++ {
		if !present[i] {
			missing = append(missing, fmt.Sprintf("%d/%d", i, f.Shard.Count))
		}
	}
	if len(missing) > 0 {
		warnings = append(warnings, fmt.Sprintf("shard(s) %s missing: %d of %d planned cell repetitions merged; "+
			"claims about cells that did not run are left out", strings.Join(missing, ", "), len(m.Cells),
			f.Shard.PlannedCells))
	}
	m.Env, warnings = commonEnv(envs, warnings, f.Shard.Unit == "kernel")
	if f.Shard.Unit == "cell" && f.Shard.Count > 1 {
		warnings = append(warnings, "the shards split the run by cell: a comparison or claim between cells of "+
			"different shards also compares their machines (give the scenario rounds: N >= shards to split by "+
			"round, so that every round runs whole on one machine and the comparisons stay within it)")
	}
	return m, warnings
}

// commonEnv keeps the environment entries every shard agrees on; kernel and lab version differences are
// warned about (the others are in each shard's entry), kernels not when byKernel (one part per kernel).
func commonEnv(envs []map[string]any, warnings []string, byKernel bool) (map[string]any, []string) {
	out := map[string]any{}
	for k, v := range envs[0] {
		same := true
		vals := []string{}
		for _, e := range envs {
			s := jsonString(e[k])
			if !slices.Contains(vals, s) {
				vals = append(vals, s)
			}
			same = same && s == jsonString(v)
		}
		switch {
		case same:
			out[k] = v
		case k == "run_dir":
		default:
			out[k] = "differs by shard (see shards)"
			if k == "kernel" && !byKernel || k == "faultlab" || k == "provider" || k == "mode" {
				warnings = append(warnings, fmt.Sprintf("the shards differ in %s: %s", k, strings.Join(vals, ", ")))
			}
		}
	}
	return out, warnings
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func envString(env map[string]any, key string) string {
	if s, ok := env[key].(string); ok {
		return s
	}
	return ""
}

// linkCells puts the shard's cell repetition directories into the merged run: hard links where the
// filesystem allows, copies otherwise. A repetition that never started (no directory) is skipped.
func linkCells(out, shardDir string, cells []CellRef) error {
	for _, c := range cells {
		src := CellDir(shardDir, c.Name, c.Rep)
		if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := CopyTree(src, CellDir(out, c.Name, c.Rep)); err != nil {
			return fmt.Errorf("merge %s: %w", src, err)
		}
	}
	return nil
}

// CopyTree puts the regular files and directories under src at the same places under dst: hard links where
// the filesystem allows, copies otherwise (sockets, FIFOs and devices are left out).
func CopyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if os.Link(path, target) == nil {
			return nil
		}
		return CopyFile(path, target)
	})
}

// CopyFile copies the regular file src to dst (created or truncated, mode 0666 before the umask).
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	o, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(o, in)
	return errors.Join(err, o.Close())
}
