package spec

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, path string) *Scenario {
	t.Helper()
	s, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(s, testVocabulary()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestExpandReference(t *testing.T) {
	s := load(t, "testdata/reload.yaml")
	before := clone(s)
	cells := Expand(s, false)
	var names []string
	for _, c := range cells {
		names = append(names, fmt.Sprintf("%s/%d", c.Name, c.Rep))
	}
	want := []string{"baseline/0", "legacy/0", "socket-transfer/0", "master-worker/0", "tcp_migrate_req/0", "syn-drop/0"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("cells %v, want %v", names, want)
	}
	byName := map[string]Cell{}
	for _, c := range cells {
		byName[c.Name] = c
	}
	if byName["baseline"].Scenario.Reload != nil {
		t.Errorf("baseline keeps the reload storm")
	}
	strategy := func(c Cell) string { return c.Scenario.Services[1].Reload }
	for name, want := range map[string]string{"legacy": "legacy", "socket-transfer": "socket-transfer", "master-worker": "master-worker", "syn-drop": "legacy"} {
		if got := strategy(byName[name]); got != want {
			t.Errorf("%s: strategy %q, want %q", name, got, want)
		}
	}
	mig := byName["tcp_migrate_req"].Scenario.Hosts[1].Sysctls
	if mig["net.ipv4.tcp_migrate_req"] != "1" || mig["net.core.somaxconn"] != "4096" {
		t.Errorf("tcp_migrate_req cell proxy sysctls: %v", mig)
	}
	if _, ok := byName["legacy"].Scenario.Hosts[1].Sysctls["net.ipv4.tcp_migrate_req"]; ok {
		t.Errorf("tcp_migrate_req leaked into the legacy cell")
	}
	if m := byName["syn-drop"].Mitigations; len(m) != 1 || m[0] != "syn-drop" {
		t.Errorf("syn-drop mitigations: %v", m)
	}
	if d := byName["legacy"].Scenario.Workload.Duration; d != 20*time.Second {
		t.Errorf("short duration %s", d)
	}
	if !reflect.DeepEqual(*s, before) {
		t.Errorf("Expand modified its input")
	}
}

func TestExpandLong(t *testing.T) {
	s := load(t, "testdata/reload.yaml")
	cells := Expand(s, true)
	if len(cells) != 18 {
		t.Fatalf("%d cells, want 6 rows x 3 repetitions", len(cells))
	}
	for i, c := range cells {
		if c.Name != s.Matrix[i/3].Name || c.Rep != i%3 {
			t.Errorf("cell %d is %s/%d: want matrix order with repetitions inner", i, c.Name, c.Rep)
		}
		if c.Scenario.Workload.Duration != 120*time.Second || c.Scenario.Repetitions != 3 {
			t.Errorf("%s/%d: duration %s, repetitions %d", c.Name, c.Rep, c.Scenario.Workload.Duration, c.Scenario.Repetitions)
		}
	}
}

func TestExpandSeeds(t *testing.T) {
	s := load(t, "testdata/reload.yaml")
	a, b := Expand(s, true), Expand(s, true)
	seen := map[int64]string{}
	for i := range a {
		if a[i].Seed != b[i].Seed {
			t.Errorf("%s/%d: seed not stable", a[i].Name, a[i].Rep)
		}
		if a[i].Seed < 0 {
			t.Errorf("%s/%d: negative seed", a[i].Name, a[i].Rep)
		}
		id := fmt.Sprintf("%s/%d", a[i].Name, a[i].Rep)
		if other, dup := seen[a[i].Seed]; dup {
			t.Errorf("%s and %s share a seed", id, other)
		}
		seen[a[i].Seed] = id
	}
	// The seed depends on the scenario seed and is the same in short and long mode for rep 0.
	short := Expand(s, false)
	if short[1].Seed != a[3].Seed {
		t.Errorf("legacy/0 seed differs between short and long mode")
	}
	s.Seed = 2
	if Expand(s, false)[1].Seed == short[1].Seed {
		t.Errorf("seed ignores the scenario seed")
	}
	if got, want := cellSeed(1, "legacy", 0), int64(6906478294161747765); got != want {
		t.Errorf("cellSeed(1, legacy, 0) = %d, want %d (seeds must not change between versions)", got, want)
	}
}

func TestExpandOverrides(t *testing.T) {
	s := load(t, "testdata/ports.yaml")
	cells := Expand(s, false)
	if len(cells) != 3 {
		t.Fatalf("%d cells", len(cells))
	}
	narrow, reuse, delay := cells[0].Scenario, cells[1].Scenario, cells[2].Scenario
	if narrow.Hosts[1].Sysctls["net.ipv4.tcp_tw_reuse"] != "0" {
		t.Errorf("narrow: %v", narrow.Hosts[1].Sysctls)
	}
	if got := reuse.Hosts[1].Sysctls; got["net.ipv4.tcp_tw_reuse"] != "1" || got["net.ipv4.ip_local_port_range"] != "10000 10999" {
		t.Errorf("reuse: row sysctls not merged over the host's: %v", got)
	}
	if got := delay.Hosts[1].Sysctls["net.ipv4.tcp_tw_reuse_delay"]; got != "100" {
		t.Errorf("reuse-delay: tcp_tw_reuse_delay = %q", got)
	}
	if got := delay.Services[1].Options; got["maxconn"] != "15000" || got["timeout_connect"] != "5s" {
		t.Errorf("reuse-delay: options not merged: %v", got)
	}
	if delay.Workload.Rate != 1500 || reuse.Workload.Rate != 500 {
		t.Errorf("rates %g %g", delay.Workload.Rate, reuse.Workload.Rate)
	}
	// Long mode: the long rate applies, the row's own rate still wins.
	long := Expand(s, true)
	if long[1].Scenario.Workload.Rate != 2000 || long[2].Scenario.Workload.Rate != 1500 {
		t.Errorf("long rates %g %g", long[1].Scenario.Workload.Rate, long[2].Scenario.Workload.Rate)
	}
	// Cells do not share maps.
	cells[0].Scenario.Hosts[1].Sysctls["net.core.somaxconn"] = "1"
	cells[0].Scenario.Services[1].Options["x"] = "y"
	if _, ok := cells[1].Scenario.Hosts[1].Sysctls["net.core.somaxconn"]; ok {
		t.Errorf("cells share host sysctls")
	}
	if _, ok := s.Services[1].Options["x"]; ok {
		t.Errorf("cell shares options with the scenario")
	}
}

func TestExpandDefaultCell(t *testing.T) {
	s := mustCheck(t, base+"repetitions: 2\n")
	cells := Expand(s, true) // no long section: same as short
	if len(cells) != 2 || cells[0].Name != "default" || cells[1].Rep != 1 || cells[0].Scenario.Reload == nil {
		t.Errorf("cells: %+v", cells)
	}
}

func TestExpandReferenceAndAnalyses(t *testing.T) {
	s := mustCheck(t, base+"matrix:\n  - name: a\n  - name: b\nreference: a\nanalyses: [port_budget, capture]\n")
	cells := Expand(s, false)
	if len(cells) != 2 {
		t.Fatalf("%d cells", len(cells))
	}
	for _, c := range cells {
		if c.Scenario.Reference != "a" || !reflect.DeepEqual(c.Scenario.Analyses, []string{"port_budget", "capture"}) {
			t.Errorf("%s: reference %q, analyses %v", c.Name, c.Scenario.Reference, c.Scenario.Analyses)
		}
		if !c.Scenario.Services[1].IsProxy() {
			t.Errorf("%s: the proxy is no longer marked", c.Name)
		}
	}
	cells[0].Scenario.Analyses[0] = "x"
	if s.Analyses[0] != "port_budget" || cells[1].Scenario.Analyses[0] != "port_budget" {
		t.Errorf("cells share the analyses slice")
	}
}

// TestExpandRounds: with rounds, every row runs one block of duration/rounds per round, each round in its own
// seeded order, and the round is the cell's Rep.
func TestExpandRounds(t *testing.T) {
	s := load(t, "testdata/reload.yaml")
	s.Rounds = 3
	dur := s.Workload.Duration
	cells := Expand(s, false)
	if len(cells) != 3*len(s.Matrix) {
		t.Fatalf("%d cells, want %d", len(cells), 3*len(s.Matrix))
	}
	orders := map[string]bool{}
	for round := range 3 {
		block := cells[round*len(s.Matrix) : (round+1)*len(s.Matrix)]
		seen, order := map[string]bool{}, ""
		for _, c := range block {
			if c.Rep != round || c.Scenario.Workload.Duration != dur/3 || seen[c.Name] {
				t.Errorf("round %d: cell %s rep %d duration %s (want rep %d, %s, each row once)", round, c.Name,
					c.Rep, c.Scenario.Workload.Duration, round, dur/3)
			}
			seen[c.Name] = true
			order += c.Name + " "
		}
		orders[order] = true
		t.Logf("round %d: %s", round, order)
	}
	if len(orders) < 2 {
		t.Errorf("every round ran the rows in the same order: %v", orders)
	}
	again := Expand(s, false)
	for i := range cells {
		if cells[i].Name != again[i].Name || cells[i].Seed != again[i].Seed {
			t.Fatalf("expansion %d differs between calls: not reproducible", i)
		}
	}
	s.Seed++
	other := Expand(s, false)
	same := true
	for i := range cells {
		same = same && cells[i].Name == other[i].Name
	}
	if same {
		t.Errorf("another seed gave the same order")
	}
}

func TestRoundsValidation(t *testing.T) {
	for _, tt := range []struct {
		rounds, reps int
		dur          time.Duration
		want         string
	}{
		{101, 1, time.Hour, "101 out of range 1..100"},
		{3, 2, 30 * time.Second, "rounds (3) and repetitions (2) cannot both be above 1"},
		{10, 1, 10 * time.Second, "10 rounds cut the duration 10s into blocks of 1s, under the 2s a block needs"},
	} {
		v := &validator{file: "r.yaml"}
		v.rounds("rounds", tt.rounds, tt.reps, tt.dur)
		if len(v.problems) != 1 || !strings.Contains(v.problems[0].Msg, tt.want) {
			t.Errorf("rounds %d reps %d dur %s: %v, want %q", tt.rounds, tt.reps, tt.dur, v.problems, tt.want)
		}
	}
	v := &validator{file: "r.yaml"}
	v.rounds("rounds", 3, 1, 30*time.Second)
	if len(v.problems) != 0 {
		t.Errorf("3 rounds of 30s: %v", v.problems)
	}
}

// TestExpandSequentialRounds: a run that adds rounds until decided gets the blocks of the fixed-size run, in
// the same orders, for as many rounds as it may need.
func TestExpandSequentialRounds(t *testing.T) {
	s := load(t, "testdata/reload.yaml")
	s.Rounds = 3
	fixed := Expand(s, false)
	seq := ExpandRounds(s, false, 7)
	if len(seq) != 7*len(s.Matrix) {
		t.Fatalf("%d cells, want %d", len(seq), 7*len(s.Matrix))
	}
	for i, c := range seq {
		if c.Scenario.Workload.Duration != s.Workload.Duration/3 || c.Rep != i/len(s.Matrix) {
			t.Fatalf("cell %d (%s): rep %d, block %s; want rep %d, block %s", i, c.Name, c.Rep,
				c.Scenario.Workload.Duration, i/len(s.Matrix), s.Workload.Duration/3)
		}
		if i < len(fixed) && (c.Name != fixed[i].Name || c.Seed != fixed[i].Seed) {
			t.Errorf("cell %d: %s seed %d, the fixed-size run has %s seed %d", i, c.Name, c.Seed, fixed[i].Name,
				fixed[i].Seed)
		}
	}
	s.Repetitions, s.Rounds = 2, 1
	if seq := ExpandRounds(s, false, 2); len(seq) != 2*len(s.Matrix) {
		t.Errorf("repetitions leaked into the rounds: %d cells", len(seq))
	}
}
