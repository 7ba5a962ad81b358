package results

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestHolm(t *testing.T) {
	// rank 1: 0.005 < 0.05/4; rank 2: 0.01 < 0.05/3; rank 3: 0.03 >= 0.05/2, so the step-down stops and 0.04
	// (below its own 0.05) is not rejected
	ps := []float64{0.01, 0.04, 0.03, 0.005}
	got := holm(ps, []float64{0.05, 0.05, 0.05, 0.05})
	want := []holmStep{{2, 0.05 / 3, true, false}, {4, 0.05, false, true}, {3, 0.025, false, false},
		{1, 0.0125, true, false}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("holm = %+v, want %+v", got, want)
	}
}

// holmCells: b has 12 of 40 reloads bad; a0, a3 and a3bis 0 and 3 of 40 (one-sided Fisher p 9.3e-5 and 0.0099).
func holmCells() map[string]*CellStats {
	return map[string]*CellStats{
		"b":     fakeCell("b", 10000, 300, 300, 40, 12, 12, time.Millisecond),
		"a0":    fakeCell("a0", 10000, 0, 0, 40, 0, 0, time.Millisecond),
		"a3":    fakeCell("a3", 10000, 30, 30, 40, 3, 3, time.Millisecond),
		"a3bis": fakeCell("a3bis", 10000, 30, 30, 40, 3, 3, time.Millisecond),
	}
}

// TestCheckHolm: the p-value claims of a scenario are one family (Holm's step-down at each claim's alpha).
func TestCheckHolm(t *testing.T) {
	cells := holmCells()
	better := func(cells ...string) []Expectation {
		var out []Expectation
		for _, c := range cells {
			out = append(out, Expectation{Cell: c, BetterThan: "b"})
		}
		return out
	}
	tests := []struct {
		name    string
		exps    []Expectation
		want    []Status
		wantThr []float64
		detail  string // in the last verdict
	}{
		{"alone_holds", better("a3"), []Status{StatusHolds}, []float64{0.01}, "p=0.0099 < 0.01, its Holm threshold " +
			"(rank 1 of 1 p-value claim)"},
		// each would hold alone at 0.01; together the smaller must be below 0.01/2
		{"two_alike_inconclusive", better("a3", "a3bis"), []Status{StatusInconclusive, StatusInconclusive},
			[]float64{0.005, 0.01}, "its Holm threshold (rank 2 of 2 p-value claims), but Holm's step-down stopped"},
		// step-down: once 9.3e-5 < 0.005 is rejected, 0.0099 is compared with 0.01 (Bonferroni would not)
		{"step_down", better("a0", "a3"), []Status{StatusHolds, StatusHolds}, []float64{0.005, 0.01},
			"rank 2 of 2 p-value claims"},
		// a void claim is not tested and not in the family
		{"void_not_in_family", append(better("a3"), Expectation{Cell: "a0", BetterThan: "nope"}),
			[]Status{StatusHolds, StatusVoid}, []float64{0.01, 0}, "not in the results"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vs := Check(tc.exps, cells)
			for i, v := range vs {
				if v.Status != tc.want[i] || v.Threshold != tc.wantThr[i] {
					t.Errorf("verdict %d: %s at Holm threshold %g, want %s at %g: %s", i, v.Status, v.Threshold,
						tc.want[i], tc.wantThr[i], v.Detail)
				}
			}
			if last := vs[len(vs)-1]; !strings.Contains(last.Detail, tc.detail) {
				t.Errorf("detail %q lacks %q", last.Detail, tc.detail)
			}
		})
	}
}

// stormCell is a storm cell summarised from synthetic records (20 reloads in 5 s), with the reloads' outcome.
func stormCell(name string, bursts []int, reloadsOK bool) *CellStats {
	recs, rel := synthCell(name, 5*time.Second, 250*time.Millisecond, bursts)
	for i := range rel {
		rel[i].OK = reloadsOK
	}
	return Summarize(name, recs, rel, SummaryOptions{})
}

// TestVoidStormReloadsFailed: every reload of the "fixed" cell failed (a simulated `-x` that errors), so it shows
// zero failures; its claims must not hold.
func TestVoidStormReloadsFailed(t *testing.T) {
	cells := map[string]*CellStats{"fixed": stormCell("fixed", nil, false),
		"legacy": stormCell("legacy", []int{0, 30, 0, 50, 0, 9, 0, 0, 40, 0, 0, 12, 0, 0, 0, 20, 0, 0, 5}, true)}
	if p := Compare(cells["fixed"], cells["legacy"]).PValue; p >= DefaultAlpha {
		t.Fatalf("p=%g: the counts alone would not pass, so the test shows nothing", p)
	}
	vs := Check([]Expectation{{Cell: "fixed", Failures: "none"}, {Cell: "fixed", BetterThan: "legacy"},
		{Cell: "legacy", BetterThan: "fixed"}}, cells)
	for _, v := range vs {
		if v.Status != StatusVoid || v.Pass || !strings.Contains(v.Detail, "fixed: 20 of 20 reload commands "+
			"failed: the fault did not happen as asked") || v.MoreData {
			t.Errorf("%s: %s %q, want void naming the failed reloads", v.Claim, v.Status, v.Detail)
		}
	}
}

func TestVoidStormWithoutReloads(t *testing.T) {
	st := stormCell("quiet", nil, true)
	st.Reloads, st.ReloadsFailed, st.Storm = 0, 0, true // a storm was asked for; none ran
	vs := Check([]Expectation{{Cell: "quiet", Failures: "none"}}, map[string]*CellStats{"quiet": st})
	if vs[0].Status != StatusVoid || !strings.Contains(vs[0].Detail, "completed no reload") || !vs[0].MoreData {
		t.Errorf("%+v, want void: no reload completed", vs[0])
	}
}

// TestVoidBaselineAgainstStorm: a cell without reloads has no bad reloads, and would beat any storm cell.
func TestVoidBaselineAgainstStorm(t *testing.T) {
	recs, _ := synthCell("baseline", 20*time.Second, 250*time.Millisecond, nil)
	cells := testCells()
	cells["baseline"] = Summarize("baseline", recs, nil, SummaryOptions{})
	if p := Compare(cells["baseline"], cells["legacy"]).PValue; p >= DefaultAlpha {
		t.Fatalf("p=%g: the counts alone would not pass, so the test shows nothing", p)
	}
	for _, e := range []Expectation{{Cell: "baseline", BetterThan: "legacy"},
		{Cell: "baseline", FewerResetsThan: "legacy"}, {Cell: "legacy", BetterThan: "baseline"}} {
		v := Check([]Expectation{e}, cells)[0]
		if v.Status != StatusVoid || !strings.Contains(v.Detail, "legacy had a reload storm and baseline did not: "+
			"a cell without a storm cannot be compared as a reload mitigation") {
			t.Errorf("%s: %s %q, want void", v.Claim, v.Status, v.Detail)
		}
	}
}

func TestVoidMinReloads(t *testing.T) {
	cells := testCells() // xmw: 80 completed reloads, no failure
	for _, tc := range []struct {
		min  int
		want Status
	}{{0, StatusHolds}, {80, StatusHolds}, {81, StatusVoid}} {
		vs := Check([]Expectation{{Cell: "xmw", Failures: "none", BetterThan: "legacy", MinReloads: tc.min}},
			cells)
		for _, v := range vs {
			if v.Status != tc.want || (tc.want == StatusVoid && (!v.MoreData ||
				!strings.Contains(v.Detail, "xmw completed 80 reloads, fewer than min_reloads 81"))) {
				t.Errorf("min_reloads %d: %s: %s %q, want %s", tc.min, v.Claim, v.Status, v.Detail, tc.want)
			}
		}
	}
	// min_reloads on the other cell of a comparison applies to it too
	cells["legacy"].Reloads = 50
	if v := Check([]Expectation{{Cell: "xmw", BetterThan: "legacy", MinReloads: 60}}, cells)[0]; v.Status !=
		StatusVoid || !strings.Contains(v.Detail, "legacy completed 50") {
		t.Errorf("%+v, want void for legacy's 50 reloads", v)
	}
}

func TestSampleSize(t *testing.T) {
	// (z.95 sqrt(2 .15 .85) + z.8 sqrt(.1 .9 + .2 .8))^2 / .1^2
	approx(t, "n", SampleSize(0.1, 0.2, 0.05, 0.8), 156.60544771942938, 1e-9)
	approx(t, "symmetric", SampleSize(0.2, 0.1, 0.05, 0.8), 156.60544771942938, 1e-9)
	if !math.IsInf(SampleSize(0.1, 0.1, 0.05, 0.8), 1) {
		t.Error("equal rates: want +Inf")
	}
	approx(t, "pseudo-rate of 0 in 19", PseudoRate0(19), 1-math.Pow(0.5, 1.0/19), 0)
	// it is the upper end of the Clopper-Pearson interval at confidence 0 (two-sided), i.e. one-sided 50%
	approx(t, "Clopper-Pearson 50%", ClopperPearson(0, 19, 0).Hi, PseudoRate0(19), 1e-12)
}

func TestNeeded(t *testing.T) {
	tests := []struct {
		name             string
		aBad, aW, bBad   int
		bW, rounds       int
		wantMore         int
		wantText, toward string
	}{
		// the recorded run: 0 of 19 against 1 of 18; 0 is floored at 1-0.5^(1/19) = 3.58%
		{"recorded_run", 0, 19, 1, 18, 1, 2229, "floored at 3.58%, the upper end of the one-sided 50% " +
			"Clopper-Pearson interval for 0 of 19", "toward hold"},
		{"a_worse", 9, 300, 4, 300, 10, 0, "", "toward fail"},
		{"both_zero", 0, 300, 0, 300, 10, 0, "no difference to detect", ""},
		{"equal", 6, 300, 6, 300, 10, 0, "the observed fractions are equal", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Comparison{A: "a", B: "b", ABad: tc.aBad, AWindows: tc.aW, BBad: tc.bBad, BWindows: tc.bW,
				Strata: make([]Stratum, tc.rounds)}
			more, text := needed(c, 0.01, 1, "reloads")
			if (tc.wantMore > 0 && more != tc.wantMore) || !strings.Contains(text, tc.wantText) ||
				!strings.Contains(text, tc.toward) {
				t.Errorf("needed = %d, %q; want %d, %q, %q", more, text, tc.wantMore, tc.wantText, tc.toward)
			}
		})
	}
	c := &Comparison{A: "a", B: "b", ABad: 9, AWindows: 300, BBad: 4, BWindows: 300, Strata: make([]Stratum, 10)}
	n := int(math.Ceil(SampleSize(9.0/300, 4.0/300, 0.01/3, DecidePower)))
	more, text := needed(c, 0.01, 3, "reloads")
	if more != n-300 || !strings.Contains(text, "alpha/3") || !strings.Contains(text, "more rounds at 30 reloads") {
		t.Errorf("needed = %d, %q; want %d more at level 0.01/3", more, text, n-300)
	}
}

// TestCheckRounds: the verdict names the rounds of the stratified test and keeps per-round evidence.
func TestCheckRounds(t *testing.T) {
	mk := func(name string, bad ...int) *CellStats {
		st := &CellStats{Cell: name, Storm: true, Reloads: 30 * len(bad), WindowKind: WindowReload}
		for rep, b := range bad {
			st.Rounds = append(st.Rounds, RoundCounts{Rep: rep, Windows: 30, BadWindows: b, Reloads: 30})
			st.Windows, st.BadWindows = st.Windows+30, st.BadWindows+b
		}
		st.Attempts, st.Failures = 1000*len(bad), 10*st.BadWindows
		return st
	}
	cells := map[string]*CellStats{"fix": mk("fix", 0, 1, 0, 0), "legacy": mk("legacy", 2, 9, 4, 3)}
	v := Check([]Expectation{{Cell: "fix", BetterThan: "legacy"}}, cells)[0]
	if v.Status != StatusHolds || !strings.Contains(v.Detail, "exact stratified test on bad windows over 4 "+
		"rounds") || v.Family != 1 {
		t.Errorf("%+v", v)
	}
	approx(t, "p", v.PValue, StratifiedLess([]Stratum{{0, 0, 30, 2, 30}, {1, 1, 30, 9, 30}, {2, 0, 30, 4, 30},
		{3, 0, 30, 3, 30}}), 1e-15)
}

func TestUnmet(t *testing.T) {
	vs := []Verdict{
		{Cell: "a", Status: StatusHolds},
		{Cell: "b", Status: StatusInconclusive},
		{Cell: "c", Status: StatusInconclusive, AcceptInconclusive: true},
		{Cell: "d", Status: StatusVoid},
	}
	names := func(vs []Verdict) (s string) {
		for _, v := range vs {
			s += v.Cell
		}
		return s
	}
	if u, failed := Unmet(vs, false); names(u) != "bd" || failed {
		t.Errorf("Unmet = %q, %v; want bd, not failed", names(u), failed)
	}
	if u, failed := Unmet(vs, true); names(u) != "d" || failed {
		t.Errorf("Unmet(accept) = %q, %v; want d, not failed", names(u), failed)
	}
	vs = append(vs, Verdict{Cell: "e", Status: StatusFails})
	if u, failed := Unmet(vs, true); names(u) != "de" || !failed {
		t.Errorf("Unmet with a fails = %q, %v; want de, failed", names(u), failed)
	}
	// the scenario's accept_inconclusive reaches the verdict
	v := Check([]Expectation{{Cell: "x", Failures: "none", AcceptInconclusive: true}},
		map[string]*CellStats{"x": {Cell: "x"}})
	if !v[0].AcceptInconclusive {
		t.Errorf("verdict lost accept_inconclusive: %+v", v[0])
	}
}
