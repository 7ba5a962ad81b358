package runner

import (
	"fmt"
	"strings"
	"testing"

	"github.com/faultlab/faultlab/harness/spec"
)

func TestParseShard(t *testing.T) {
	for in, want := range map[string]Shard{"1/2": {1, 2}, "2/2": {2, 2}, " 3 / 4 ": {3, 4}} {
		if got, err := ParseShard(in); err != nil || got != want {
			t.Errorf("ParseShard(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0/2", "3/2", "1", "1/0", "a/b", "1/1001", "-1/2", ""} {
		if _, err := ParseShard(in); err == nil {
			t.Errorf("ParseShard(%q): no error", in)
		}
	}
}

// cellsOf is a run's cells: names x reps, in the order Expand gives (rounds: each round's rows in turn).
func cellsOf(names []string, reps, rounds int) []spec.Cell {
	var out []spec.Cell
	for rep := range reps {
		for _, n := range names {
			out = append(out, spec.Cell{Name: n, Rep: rep, Scenario: spec.Scenario{Rounds: rounds}})
		}
	}
	return out
}

func keys(cells []spec.Cell) string {
	var s []string
	for _, c := range cells {
		s = append(s, fmt.Sprintf("%s/%d", c.Name, c.Rep))
	}
	return strings.Join(s, " ")
}

// TestShardCells: the shards of a run partition its cells; by round every shard holds whole rounds (every
// cell of them), by cell whole cells.
func TestShardCells(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cells []spec.Cell
		count int
		unit  string
		want  []string // per shard
	}{
		{"rounds", cellsOf([]string{"a", "b"}, 4, 4), 2, ShardByRound, []string{"a/0 b/0 a/2 b/2", "a/1 b/1 a/3 b/3"}},
		{"rounds-uneven", cellsOf([]string{"a", "b"}, 3, 3), 2, ShardByRound, []string{"a/0 b/0 a/2 b/2", "a/1 b/1"}},
		{"repetitions", cellsOf([]string{"a"}, 2, 1), 2, ShardByRep, []string{"a/0", "a/1"}},
		{"cells", cellsOf([]string{"a", "b", "c"}, 1, 1), 2, ShardByCell, []string{"a/0 c/0", "b/0"}},
		{"one", cellsOf([]string{"a", "b"}, 2, 2), 1, ShardByRound, []string{"a/0 b/0 a/1 b/1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]int{}
			for i := 1; i <= tc.count; i++ {
				got, unit, err := shardCells(tc.cells, Shard{i, tc.count})
				if err != nil {
					t.Fatal(err)
				}
				if unit != tc.unit || keys(got) != tc.want[i-1] {
					t.Errorf("shard %d/%d: %s by %s, want %s by %s", i, tc.count, keys(got), unit, tc.want[i-1], tc.unit)
				}
				for _, c := range got {
					seen[fmt.Sprintf("%s/%d", c.Name, c.Rep)]++
				}
			}
			if len(seen) != len(tc.cells) {
				t.Errorf("the shards hold %d of %d cell repetitions", len(seen), len(tc.cells))
			}
			for k, n := range seen {
				if n != 1 {
					t.Errorf("%s in %d shards", k, n)
				}
			}
		})
	}
	_, _, err := shardCells(cellsOf([]string{"a", "b"}, 2, 2), Shard{1, 3})
	if err == nil || !strings.Contains(err.Error(), "the run has 2 rounds to share among 3 shards") {
		t.Errorf("3 shards of 2 rounds: %v", err)
	}
}
