package results

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// shardedRun is a whole run (four rounds of legacy and fix, with axes) and the same repetitions split into
// two shard directories by round, as `faultlab run --shard I/2` would write them.
func shardedRun(t *testing.T) (whole string, shards []string, metas []*RunMeta) {
	t.Helper()
	s := newSynthRun(t)
	s.meta.Cells = nil
	s.meta.Reference = "legacy"
	s.meta.Expect = []Expectation{{Cell: "fix", BetterThan: "legacy"}, {Cell: "legacy", Failures: "some"},
		{Cell: "fix", Failures: "none"}}
	s.meta.Axes = []AxisMeta{{Name: "strategy", Levels: []string{"legacy", "fix"}}}
	s.meta.CellAxes = map[string]map[string]string{"legacy": {"strategy": "legacy"}, "fix": {"strategy": "fix"}}
	legacy := [][]int{{0, 40, 0, 0, 25, 0, 10, 0}, {30, 40, 20, 10, 25, 5, 10, 7}, {0, 0, 0, 9, 0, 0, 0, 0},
		{5, 0, 0, 3, 0, 0, 0, 1}}
	for rep := range 4 {
		s.meta.Cells = append(s.meta.Cells, CellRef{"legacy", rep}, CellRef{"fix", rep})
		s.addRep(t, &CellMeta{Cell: "legacy", Rep: rep, Storm: true}, legacy[rep])
		s.addRep(t, &CellMeta{Cell: "fix", Rep: rep, Storm: true}, []int{0, 0, 0, 0, 0, 0, 0, 0})
	}
	if err := WriteRunMeta(s.dir, s.meta); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		dir := filepath.Join(t.TempDir(), "shard")
		m := *s.meta
		m.ID = "shard" + string(rune('0'+i))
		m.Env = map[string]any{"kernel": "6.18.0", "machine": "runner-" + string(rune('0'+i)), "provider": "netns"}
		m.Shard = &ShardMeta{Index: i, Count: 2, Unit: "round", Plan: "0123abcd", PlannedCells: 8,
			Order: []string{"legacy", "fix"}}
		m.Cells = nil
		for _, c := range s.meta.Cells {
			if c.Rep%2 == i-1 {
				m.Cells = append(m.Cells, c)
				if err := copyDir(CellDir(s.dir, c.Name, c.Rep), CellDir(dir, c.Name, c.Rep)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := WriteRunMeta(dir, &m); err != nil {
			t.Fatal(err)
		}
		shards, metas = append(shards, dir), append(metas, &m)
	}
	return s.dir, shards, metas
}

func copyDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := CopyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// TestMergeEqualsWholeRun: the merge of the shards gives the whole run's cells, statistics, comparisons and
// verdicts, whatever order the shards are given in, with each cell's shards and the shards' machines.
func TestMergeEqualsWholeRun(t *testing.T) {
	whole, shards, _ := shardedRun(t)
	want := build(t, whole)
	if a := want.AlongAxes; len(a) != 1 || a[0].A != "fix" || a[0].B != "legacy" || a[0].Axis != "strategy" {
		t.Errorf("along the axes: %+v, want fix against legacy", a)
	}
	if len(want.Verdicts) != 3 || want.Verdicts[0].Status != StatusHolds {
		t.Fatalf("the whole run's verdicts are not the ones this test is about: %+v", want.Verdicts)
	}
	out := filepath.Join(t.TempDir(), "merged")
	got, err := Merge(out, []string{shards[1], shards[0]})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Verdicts, want.Verdicts) {
		t.Errorf("verdicts differ:\nmerged %+v\nwhole  %+v", got.Verdicts, want.Verdicts)
	}
	if !reflect.DeepEqual(got.Comparisons, want.Comparisons) || !reflect.DeepEqual(got.AlongAxes, want.AlongAxes) {
		t.Errorf("comparisons differ:\nmerged %+v %+v\nwhole  %+v %+v", got.Comparisons, got.AlongAxes,
			want.Comparisons, want.AlongAxes)
	}
	if len(got.Cells) != 2 {
		t.Fatalf("cells %v", cellNamesOf(got))
	}
	for i, c := range got.Cells {
		if !reflect.DeepEqual(c.Stats, want.Cells[i].Stats) || c.Reps != 4 {
			t.Errorf("cell %s: statistics differ from the whole run's (reps %d)", c.Name, c.Reps)
		}
		if !slices.Equal(c.Shards, []int{1, 2}) || c.Axes["strategy"] != c.Name {
			t.Errorf("cell %s: shards %v, axes %v", c.Name, c.Shards, c.Axes)
		}
	}
	if len(got.Shards) != 2 || got.Shards[0].Machine != "runner-1" || got.Shards[1].Index != 2 ||
		got.Env["machine"] != "differs by shard (see shards)" || got.Env["kernel"] != "6.18.0" {
		t.Errorf("shards %+v, env %v", got.Shards, got.Env)
	}
	if len(got.Warnings) != 0 {
		t.Errorf("warnings for a complete merge on one kernel: %v", got.Warnings)
	}
	again := build(t, out) // the merged directory is a run directory like any other
	if !reflect.DeepEqual(again.Verdicts, want.Verdicts) {
		t.Errorf("rebuilding the merged directory changed its verdicts")
	}
}

func TestMergeRefuses(t *testing.T) {
	_, shards, metas := shardedRun(t)
	rewrite := func(t *testing.T, i int, edit func(m *RunMeta)) {
		t.Helper()
		m := *metas[i]
		sh := *m.Shard
		m.Shard = &sh
		edit(&m)
		if err := WriteRunMeta(shards[i], &m); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = WriteRunMeta(shards[i], metas[i]) })
	}
	for _, tc := range []struct {
		name string
		edit func(m *RunMeta)
		want string
	}{
		{"not-a-shard", func(m *RunMeta) { m.Shard = nil }, "is not a shard (run it with --shard I/N)"},
		{"other-plan", func(m *RunMeta) { m.Shard.Plan = "ffff" }, "are shards of different runs"},
		{"other-count", func(m *RunMeta) { m.Shard.Count = 3 }, "are shards of different runs"},
		{"other-scenario", func(m *RunMeta) { m.Scenario = "exhaustion" }, "is scenario exhaustion"},
		{"same-index", func(m *RunMeta) { m.Shard.Index = 1; m.Cells = []CellRef{{"fix", 1}} }, "are both shard 1/2"},
		{"same-cell", func(m *RunMeta) { m.Cells = append(m.Cells, CellRef{"fix", 0}) }, "fix/rep0 ran in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rewrite(t, 1, tc.edit)
			out := filepath.Join(t.TempDir(), "merged")
			_, err := Merge(out, shards)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a refused merge left %s", out)
			}
		})
	}
}

func TestMergeWarns(t *testing.T) {
	_, shards, metas := shardedRun(t)
	m := *metas[1]
	m.Env = map[string]any{"kernel": "6.1.0", "machine": "other", "provider": "netns"}
	sh := *m.Shard
	sh.Unit = "cell"
	m.Shard = &sh
	if err := WriteRunMeta(shards[1], &m); err != nil {
		t.Fatal(err)
	}
	got, err := Merge(filepath.Join(t.TempDir(), "a"), shards)
	if err != nil {
		t.Fatal(err)
	}
	warned := strings.Join(got.Warnings, "\n")
	for _, w := range []string{"the shards differ in kernel: \"6.18.0\", \"6.1.0\""} {
		if !strings.Contains(warned, w) {
			t.Errorf("no warning %q in:\n%s", w, warned)
		}
	}
	one, err := Merge(filepath.Join(t.TempDir(), "b"), shards[:1])
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(one.Warnings, "\n"); !strings.Contains(w, "shard(s) 2/2 missing: 4 of 8 planned cell repetitions") {
		t.Errorf("a merge without shard 2 warns: %q", w)
	}
	if len(one.Cells) != 2 || one.Cells[0].Reps != 2 {
		t.Errorf("one shard's cells: %v", cellNamesOf(one))
	}
	var md strings.Builder
	if err := Markdown(&md, one); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Merged from 1 shards (by round)", "Warning: shard(s) 2/2 missing", "## Axes", "| strategy |"} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("table lacks %q", s)
		}
	}
}

func TestMergeWarnsCellShards(t *testing.T) {
	_, shards, metas := shardedRun(t)
	for i := range metas {
		m := *metas[i]
		sh := *m.Shard
		sh.Unit = "cell"
		m.Shard = &sh
		if err := WriteRunMeta(shards[i], &m); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Merge(filepath.Join(t.TempDir(), "m"), shards)
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(got.Warnings, "\n"); !strings.Contains(w, "split the run by cell") {
		t.Errorf("warnings %q", w)
	}
}

// TestMergeEnvVersions: a daemon's version that differs between cells (two guests' suites in a run under
// several kernels) is not reported as the last cell's, nor is a cell's own record (syn_hold: the engine of
// each kernel); equal values stay.
func TestMergeEnvVersions(t *testing.T) {
	metas := []*CellMeta{
		{Cell: "a.debian-6-1", Info: map[string]any{"haproxy_version": "2.6.12", "mariadb_version": "10.11",
			"syn_hold": map[string]any{"engine": "plug"}}},
		{Cell: "a.debian-6-12", Info: map[string]any{"haproxy_version": "3.0.11", "mariadb_version": "10.11",
			"syn_hold": map[string]any{"engine": "nfqueue"}}},
	}
	env := mergeEnv(map[string]any{"kernel": "x"}, metas)
	if env["haproxy_version"] != DiffersByCell || env["mariadb_version"] != "10.11" || env["kernel"] != "x" ||
		env["syn_hold"] != DiffersByCell {
		t.Errorf("env %v", env)
	}
}
