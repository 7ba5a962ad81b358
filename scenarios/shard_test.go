package scenarios

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/runner"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/harness/testutil"
	"github.com/faultlab/faultlab/results"
)

// TestShardMerge runs shard.yaml whole, then as --shard 1/2 and --shard 2/2 (one round each, both cells in
// it), merges the two shard directories, and checks that the merge gives the whole run's verdicts: the same
// claims with the same status and the same p-values, every one holding. shard.yaml is built so that its
// verdicts are far from any boundary (docs/scale.md): the narrow port range fails in every 1 s window and the
// wide one in none, so the failure claims are plain counts and the stratified test can only give
// p = (1/20)^2 = 0.0025 against alpha 0.01, in any run where the kernel holds ports in TIME_WAIT for 60 s.
// The shards ran on one machine here; what merge does across machines is results' TestMerge*.
func TestShardMerge(t *testing.T) {
	testutil.RequireRoot(t)
	out := os.Getenv("FAULTLAB_RUNS")
	if out == "" {
		out = t.TempDir()
	}
	run := func(t *testing.T, shard *runner.Shard) (*results.Report, string) {
		t.Helper()
		s, err := spec.Load("shard.yaml")
		if err != nil {
			t.Fatal(err)
		}
		r, err := runner.New(s, runner.Options{OutDir: out, Shard: shard, Long: longMode()})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		rep, err := r.Run(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d cell repetitions in %s (%s)", r.Dir, len(r.Cells()), time.Since(start).Round(time.Millisecond),
			shardName(shard))
		return rep, r.Dir
	}
	whole, _ := run(t, nil)
	var dirs []string
	for i := 1; i <= 2; i++ {
		_, dir := run(t, &runner.Shard{Index: i, Count: 2})
		dirs = append(dirs, dir)
	}
	merged, err := results.Merge(filepath.Join(out, "shard-merged-"+filepath.Base(dirs[0])), dirs)
	if err != nil {
		t.Fatal(err)
	}
	if len(merged.Warnings) > 0 {
		t.Errorf("warnings merging two shards of one machine: %v", merged.Warnings)
	}
	if len(whole.Verdicts) != 3 || len(merged.Verdicts) != len(whole.Verdicts) {
		t.Fatalf("%d verdicts whole, %d merged; want 3 each", len(whole.Verdicts), len(merged.Verdicts))
	}
	for i, w := range whole.Verdicts {
		m := merged.Verdicts[i]
		t.Logf("whole: %s %s (p %g); merged: %s %s (p %g)", w.Status, w.Claim, w.PValue, m.Status, m.Claim, m.PValue)
		if w.Status != results.StatusHolds {
			t.Errorf("whole run: %s: %s: %s", w.Status, w.Claim, w.Detail)
		}
		if m.Claim != w.Claim || m.Status != w.Status || m.PValue != w.PValue || m.ReverseP != w.ReverseP {
			t.Errorf("merged verdict differs from the whole run's:\n  merged %s %s p=%g/%g: %s\n  whole  %s %s p=%g/%g",
				m.Status, m.Claim, m.PValue, m.ReverseP, m.Detail, w.Status, w.Claim, w.PValue, w.ReverseP)
		}
	}
	for _, c := range merged.Cells {
		if c.Reps != 2 || !slices.Equal(c.Shards, []int{1, 2}) {
			t.Errorf("merged cell %s: %d rounds from shards %v, want 2 from shards 1 and 2", c.Name, c.Reps, c.Shards)
		}
	}
}

func shardName(s *runner.Shard) string {
	if s == nil {
		return "unsharded"
	}
	return "shard " + s.String()
}
