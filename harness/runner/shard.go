package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/results"
)

// Shard selects one of Count slices of a run (Index counts from 1), as `faultlab run --shard I/N` asks.
type Shard struct {
	Index, Count int
}

// MaxShards bounds N in --shard I/N.
const MaxShards = 1000

// ParseShard parses "I/N" (1 <= I <= N).
func ParseShard(s string) (Shard, error) {
	i, n, ok := strings.Cut(s, "/")
	index, err1 := strconv.Atoi(strings.TrimSpace(i))
	count, err2 := strconv.Atoi(strings.TrimSpace(n))
	if !ok || err1 != nil || err2 != nil || count < 1 || count > MaxShards || index < 1 || index > count {
		return Shard{}, fmt.Errorf("--shard %q: want I/N with 1 <= I <= N <= %d (e.g. 1/4)", s, MaxShards)
	}
	return Shard{Index: index, Count: count}, nil
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// The units a run is sharded by.
const (
	ShardByRound = "round"
	ShardByRep   = "repetition"
	ShardByCell  = "cell"
)

// shardCells keeps this shard's slice of the run's cells, deterministically from the cells alone. A run with
// several rounds (or repetitions) is split by round: shard I keeps every cell of the rounds r with
// r mod N = I-1, so each round runs whole on one machine and the comparisons, stratified by round, compare
// cells only within a machine. A run of one round is split by cell (the I-th, I+N-th... cells in plan order):
// cells of different shards are then compared across machines, which merge warns about. Fewer units than
// shards is an error (a shard would run nothing).
func shardCells(cells []spec.Cell, sh Shard) ([]spec.Cell, string, error) {
	reps, names := 0, []string{}
	for _, c := range cells {
		reps = max(reps, c.Rep+1)
		if !slices.Contains(names, c.Name) {
			names = append(names, c.Name)
		}
	}
	unit, units := ShardByCell, len(names)
	if reps > 1 {
		unit, units = ShardByRep, reps
		if len(cells) > 0 && cells[0].Scenario.Rounds > 1 {
			unit = ShardByRound
		}
	}
	if units < sh.Count {
		return nil, "", fmt.Errorf("--shard %s: the run has %d %ss to share among %d shards; use at most %d "+
			"shards (or more rounds: rounds split the run with each round on one machine)", sh, units, unit,
			sh.Count, units)
	}
	var out []spec.Cell
	for _, c := range cells {
		u := c.Rep
		if unit == ShardByCell {
			u = slices.Index(names, c.Name)
		}
		if u%sh.Count == sh.Index-1 {
			out = append(out, c)
		}
	}
	return out, unit, nil
}

// shardMeta describes this run as a shard of the whole run whose cells are all: the plan's fingerprint lets
// merge refuse shards of different runs.
func shardMeta(s *spec.Scenario, opts Options, all []spec.Cell, unit string) (*results.ShardMeta, error) {
	type planCell struct {
		Name string
		Rep  int
		Seed int64
	}
	plan := struct {
		Mode     string
		Seed     int64
		Scenario spec.Scenario
		Cells    []planCell
	}{Mode: mode(opts.Long), Seed: s.Seed, Scenario: *s}
	plan.Scenario.File = "" // the same scenario from another checkout is the same plan
	var order []string
	for _, c := range all {
		plan.Cells = append(plan.Cells, planCell{c.Name, c.Rep, c.Seed})
		if !slices.Contains(order, c.Name) {
			order = append(order, c.Name)
		}
	}
	b, err := json.Marshal(plan)
	if err != nil {
		return nil, fmt.Errorf("shard plan: %w", err)
	}
	sum := sha256.Sum256(b)
	return &results.ShardMeta{Index: opts.Shard.Index, Count: opts.Shard.Count, Unit: unit,
		Plan: hex.EncodeToString(sum[:8]), PlannedCells: len(all), Order: order}, nil
}

// ShardUnits checks the scenario and says how a run of it with opts would be sharded: by what unit, and how
// many units there are (the most shards it can have). For tools that plan shards without running them.
func ShardUnits(s *spec.Scenario, opts Options) (string, int, error) {
	if err := spec.Check(s, Vocabulary()); err != nil {
		return "", 0, err
	}
	if opts.Seed != 0 {
		s.Seed = opts.Seed
	}
	cells, err := selectCells(spec.Expand(s, opts.Long), opts.Cells)
	if err != nil {
		return "", 0, err
	}
	_, unit, err := shardCells(cells, Shard{Index: 1, Count: 1})
	if err != nil {
		return "", 0, err
	}
	n := 0
	seen := map[string]bool{}
	for _, c := range cells {
		k := c.Name
		if unit != ShardByCell {
			k = strconv.Itoa(c.Rep)
		}
		if !seen[k] {
			seen[k] = true
			n++
		}
	}
	return unit, n, nil
}
