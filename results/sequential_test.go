package results

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSpent(t *testing.T) {
	var sum float64
	for k := 1; k <= 10; k++ {
		inc := Spent(0.05, k, 10) - Spent(0.05, k-1, 10)
		if inc <= 0 {
			t.Errorf("look %d spends %g", k, inc)
		}
		sum += inc
	}
	approx(t, "total spent", sum, 0.05, 1e-15)
	approx(t, "first look", Spent(0.05, 1, 10), 0.05e-3, 1e-18)
	if Spent(0.05, 12, 10) != 0.05 {
		t.Error("spending beyond the last look")
	}
}

func TestSequentialLook(t *testing.T) {
	s := NewSequential(0.05, 4) // increments: 0.05 (1, 7, 19, 37)/64
	d := s.Look(Test{Key: "a", P: 0.0007, ReverseP: 1}, Test{Key: "b", P: 0.5, ReverseP: 0.5})
	// look 1: Holm over 2 at 0.05/64 = 7.8e-4: rank 1 threshold 3.9e-4, so "a" waits
	if d.Claims[0].Status != StatusContinue || d.Done {
		t.Fatalf("look 1: %+v", d)
	}
	d = s.Look(Test{Key: "a", P: 0.0007, ReverseP: 1}, Test{Key: "b", P: 0.5, ReverseP: 0.5})
	// look 2: 0.05*7/64 = 5.5e-3, rank 1 of 2: 2.7e-3 > 7e-4
	if c := d.Claims[0]; c.Status != StatusHolds || c.Look != 2 || d.Claims[1].Status != StatusContinue {
		t.Fatalf("look 2: %+v", d)
	}
	d = s.Look(Test{Key: "a", P: 0.9, ReverseP: 0.01}, Test{Key: "b", P: 0.999, ReverseP: 0.001})
	if c := d.Claims[0]; c.Status != StatusHolds || c.Look != 2 { // decided claims stay decided
		t.Errorf("look 3: a %+v", c)
	}
	if c := d.Claims[1]; c.Status != StatusFails || c.Look != 3 || !d.Done {
		t.Errorf("look 3: b %+v, done %v", c, d.Done)
	}
	s = NewSequential(0.05, 1)
	if d := s.Look(Test{Key: "x", P: 0.2, ReverseP: 0.9}); d.Claims[0].Status != StatusInconclusive || !d.Done {
		t.Errorf("last look undecided: %+v, want inconclusive", d)
	}
}

// simResult is what a simulation of sequential runs measured.
type simResult struct {
	runs                   int
	holds, fails           int     // sequential decisions, by the last look
	meanRounds             float64 // rounds run until the decision (maxRounds when undecided)
	fixedHolds, fixedFails []int   // by round R: a fixed R-round design's one test at alpha decided so
	naiveHolds             int     // runs in which some round's test at alpha alone said holds
}

// simulate runs A and B with bad-window probabilities pa and pb, `windows` windows per round per cell, for up to
// maxRounds rounds, `runs` times, judging each run with a Sequential (one look per round, through Compare) and,
// for every R, with a fixed R-round design (one test at alpha after round R).
func simulate(pa, pb float64, windows, maxRounds, runs int, alpha float64, seed uint64) simResult {
	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	res := simResult{runs: runs, fixedHolds: make([]int, maxRounds+1), fixedFails: make([]int, maxRounds+1)}
	draw := func(p float64) int {
		n := 0
		for range windows {
			if rng.Float64() < p {
				n++
			}
		}
		return n
	}
	var rounds int
	for range runs {
		seq := NewSequential(alpha, maxRounds)
		a, b := &CellStats{Cell: "a"}, &CellStats{Cell: "b"}
		decided, naive := 0, false
		for k := 1; k <= maxRounds; k++ {
			a.Rounds = append(a.Rounds, RoundCounts{Rep: k - 1, Windows: windows, BadWindows: draw(pa)})
			b.Rounds = append(b.Rounds, RoundCounts{Rep: k - 1, Windows: windows, BadWindows: draw(pb)})
			c := Compare(a, b)
			if c.PValue < alpha {
				res.fixedHolds[k]++
				naive = true
			}
			if c.ReverseP < alpha {
				res.fixedFails[k]++
			}
			if decided > 0 {
				continue // keep drawing for the fixed designs
			}
			switch seq.Look(c.Test(alpha)).Claims[0].Status {
			case StatusHolds:
				res.holds++
				decided = k
			case StatusFails:
				res.fails++
				decided = k
			}
		}
		if decided == 0 {
			decided = maxRounds
		}
		if naive {
			res.naiveHolds++
		}
		rounds += decided
	}
	res.meanRounds = float64(rounds) / float64(runs)
	return res
}

// TestSequentialFalseAlarm simulates 10,000 runs under the null hypothesis (A and B alike: 10% of windows bad,
// 30 windows per round per cell, up to 10 rounds) at alpha 0.05: the sequential rule may hold (A better) or fail
// (A worse) falsely at most alpha of the time each, within three Monte Carlo standard deviations.
func TestSequentialFalseAlarm(t *testing.T) {
	const runs, alpha = 10000, 0.05
	r := simulate(0.1, 0.1, 30, 10, runs, alpha, 1)
	sd := math.Sqrt(alpha * (1 - alpha) / runs)
	holds, fails := float64(r.holds)/runs, float64(r.fails)/runs
	t.Logf("null (10%% vs 10%%, 30 windows per round, 10 rounds, %d runs, alpha %g): sequential false holds %.4f, "+
		"false fails %.4f (bound %.4f = alpha + 3 sd); a fixed 10-round design: %.4f and %.4f; mean rounds %.2f",
		runs, alpha, holds, fails, alpha+3*sd, float64(r.fixedHolds[10])/runs, float64(r.fixedFails[10])/runs,
		r.meanRounds)
	if holds > alpha+3*sd || fails > alpha+3*sd {
		t.Errorf("false-alarm rate above alpha: holds %.4f, fails %.4f > %.4f", holds, fails, alpha+3*sd)
	}
	// what the spending avoids: testing at alpha after every round and stopping at the first p < alpha
	t.Logf("for comparison, the naive rule (alpha at every round) holds falsely in %.4f of the runs",
		float64(r.naiveHolds)/runs)
}

// TestSequentialPower simulates 10,000 runs under an alternative (A 2% of windows bad, B 10%, 30 windows per round
// per cell) and states the sequential rule's power and mean rounds to stop, against fixed designs at the same
// alpha: it must stop sooner on average than the fixed 10-round design (which always runs 10 rounds) and than
// the shortest fixed design with the same power.
func TestSequentialPower(t *testing.T) {
	const runs, alpha, maxRounds = 10000, 0.05, 10
	r := simulate(0.02, 0.1, 30, maxRounds, runs, alpha, 2)
	power := float64(r.holds) / runs
	same := 0 // the shortest fixed design with at least the sequential power
	for k := 1; k <= maxRounds; k++ {
		if float64(r.fixedHolds[k])/runs >= power {
			same = k
			break
		}
	}
	var fixed strings.Builder
	for k := 1; k <= maxRounds; k++ {
		fixed.WriteString(" " + strconv.FormatFloat(float64(r.fixedHolds[k])/runs, 'f', 3, 64))
	}
	t.Logf("alternative (2%% vs 10%%, 30 windows per round, alpha %g, %d runs): sequential power %.4f (wrong-way "+
		"fails %d), mean rounds to stop %.2f of at most %d; fixed designs' power after 1..10 rounds:%s; the "+
		"shortest fixed design with the sequential power runs %d rounds", alpha, runs, power, r.fails,
		r.meanRounds, maxRounds, fixed.String(), same)
	if r.meanRounds >= maxRounds || power < 0.9 || same == 0 || r.meanRounds >= float64(same) {
		t.Errorf("sequential: power %.4f, mean rounds %.2f; want it to stop sooner on average than the fixed "+
			"%d-round design and than the fixed design of the same power (%d rounds)", power, r.meanRounds,
			maxRounds, same)
	}
}

// TestBuildSequential: a run directory with interleaved rounds and a sequential plan is judged by replaying the
// looks, round by round; results.json names the test, the rounds and the drift.
func TestBuildSequential(t *testing.T) {
	s := newSynthRun(t)
	s.meta.Cells = nil
	s.meta.Expect = []Expectation{{Cell: "fix", BetterThan: "legacy"}, {Cell: "legacy", Failures: "some"}}
	legacy := [][]int{{0, 40, 0, 0, 25, 0, 10, 0}, {30, 40, 20, 10, 25, 5, 10, 7}, {0, 0, 0, 9, 0, 0, 0, 0}}
	for rep := range 3 {
		s.meta.Cells = append(s.meta.Cells, CellRef{"legacy", rep}, CellRef{"fix", rep})
		s.addRep(t, &CellMeta{Cell: "legacy", Rep: rep, Storm: true}, legacy[rep])
		s.addRep(t, &CellMeta{Cell: "fix", Rep: rep, Storm: true}, []int{0, 0, 0, 0, 0, 0, 0, 0})
	}
	for _, tc := range []struct {
		name     string
		plan     *SequentialPlan
		decision string
	}{
		{"fixed", nil, "exact stratified test on bad windows over 3 rounds"},
		// 0 of 8 against 3 of 8 at look 1 is not enough at 0.01/27; with round 2 (11 of 16) it is
		{"sequential", &SequentialPlan{MaxLooks: 6}, "sequential design, look 2 of 6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.meta.Sequential = tc.plan
			if err := WriteRunMeta(s.dir, s.meta); err != nil {
				t.Fatal(err)
			}
			r := build(t, s.dir)
			v := r.Verdicts[0]
			if v.Status != StatusHolds || !strings.Contains(v.Detail, tc.decision) {
				t.Errorf("verdict %s: %s", v.Status, v.Detail)
			}
			if c := r.Comparisons[0]; c.A != "fix" || len(c.Strata) != 3 ||
				!strings.Contains(c.Method, "exact stratified (conditional) test on bad windows per round, 3 strata") {
				t.Errorf("comparison %+v", c)
			}
			if d := r.Drift; d == nil || d.Cell != "legacy" || len(d.Rounds) != 3 || d.Rounds[1].Fraction != 1 {
				t.Errorf("drift %+v", d)
			}
			if tc.plan == nil {
				if r.Sequential != nil {
					t.Errorf("fixed run with a sequential report %+v", r.Sequential)
				}
				return
			}
			if q := r.Sequential; q == nil || q.Looks != 3 || q.MaxLooks != 6 || q.Undecided != 0 || !q.Done {
				t.Errorf("sequential report %+v", q)
			}
		})
	}
	// an undecided claim keeps a sequential run going until its last look
	s.meta.Expect = []Expectation{{Cell: "legacy", BetterThan: "fix"}, {Cell: "fix", Failures: "some"}}
	s.meta.Sequential = &SequentialPlan{MaxLooks: 6}
	if err := WriteRunMeta(s.dir, s.meta); err != nil {
		t.Fatal(err)
	}
	r := build(t, s.dir)
	if q := r.Sequential; q.Undecided != 1 || q.Done || r.Verdicts[0].Status != StatusFails ||
		r.Verdicts[1].Status != StatusInconclusive {
		t.Errorf("sequential report %+v, verdicts %s %s", q, r.Verdicts[0].Status, r.Verdicts[1].Status)
	}
	// the plan's budget and why the rounds stopped reach the report and the table, with the time taken
	s.meta.Sequential = &SequentialPlan{MaxLooks: 6, Budget: "30m0s", Stopped: "budget"}
	s.meta.Finished = s.meta.Started.Add(1234 * time.Second)
	if err := WriteRunMeta(s.dir, s.meta); err != nil {
		t.Fatal(err)
	}
	r = build(t, s.dir)
	if q := r.Sequential; q.Budget != "30m0s" || q.Stopped != "budget" || q.Elapsed != "20m34s" {
		t.Errorf("sequential report %+v", q)
	}
	var md strings.Builder
	_ = Markdown(&md, r)
	want := "Sequential run: 3 of at most 6 looks (one per round) in 20m34s of a 30m0s budget, more rounds may " +
		"still decide 1 claim; stopped: the budget could not hold another round."
	if !strings.Contains(md.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, md.String())
	}
}
