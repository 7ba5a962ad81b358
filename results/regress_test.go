package results

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The comparison's fixtures (testdata/compare) are the recorded run's results.json (a real Reload run of
// legacy and socket-transfer) with each cell's counts replaced by three rounds of 200 reloads: legacy 60 bad
// reloads (18, 22, 20) in the baseline; the reruns keep everything but the counts named. -update regenerates
// them; the tests read the files.
var compareFixtures = map[string]map[string][3]int{ // run -> cell -> bad reloads per round
	"baseline-run": {"legacy": {18, 22, 20}, "socket-transfer": {0, 0, 0}},
	"rerun":        {"legacy": {18, 22, 20}, "socket-transfer": {0, 0, 0}},
	"double":       {"legacy": {36, 44, 40}, "socket-transfer": {0, 0, 0}},
	"broken":       {"legacy": {18, 22, 20}, "socket-transfer": {19, 21, 17}},
}

const fixtureWindows = 200 // reloads per round

func syntheticReport(t *testing.T, bad map[string][3]int) *Report {
	t.Helper()
	r, err := ReadReport(filepath.Join("testdata", "recorded-run", ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	r.Comparisons, r.Verdicts, r.Drift = nil, nil, nil
	for i := range r.Cells {
		st := r.Cells[i].Stats
		st.Rounds, st.BadWindows, st.ResetWindows, st.Windows, st.Reloads = nil, 0, 0, 0, 0
		st.Failures, st.Resets, st.Attempts = 0, 0, 0
		for rep, k := range bad[st.Cell] {
			rc := RoundCounts{Rep: rep, Attempts: 1000 * fixtureWindows / 100, Failures: 3 * k,
				Windows: fixtureWindows, BadWindows: k, ResetWindows: k, Reloads: fixtureWindows}
			st.Rounds = append(st.Rounds, rc)
			st.BadWindows, st.ResetWindows, st.Windows = st.BadWindows+k, st.ResetWindows+k, st.Windows+rc.Windows
			st.Reloads, st.Failures, st.Resets, st.Attempts = st.Reloads+rc.Reloads, st.Failures+rc.Failures,
				st.Resets+rc.Failures, st.Attempts+rc.Attempts
		}
		st.Reps, r.Cells[i].Reps = 3, 3
		st.BadWindowFraction = float64(st.BadWindows) / float64(st.Windows)
		st.BadWindowCI = ClopperPearson(st.BadWindows, st.Windows, 0.95)
	}
	return r
}

// compareFixture reads (or, under -update, writes) testdata/compare/<name>/results.json.
func compareFixture(t *testing.T, name string) *Report {
	t.Helper()
	dir := filepath.Join("testdata", "compare", name)
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syntheticReport(t, compareFixtures[name]).WriteJSON(filepath.Join(dir, ResultsFile)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := ReadRunReport(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fixtureBaseline reads testdata/compare/baseline.json, saved from baseline-run (rewritten under -update).
func fixtureBaseline(t *testing.T) *Baseline {
	t.Helper()
	path := filepath.Join("testdata", "compare", "baseline.json")
	if *update {
		b, err := NewBaseline(compareFixture(t, "baseline-run"))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Write(path); err != nil {
			t.Fatal(err)
		}
	}
	b, err := ReadBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func statusOf(t *testing.T, g *Regression, cell, metric string) RegressResult {
	t.Helper()
	for _, r := range g.Results {
		if r.Cell == cell && r.Metric == metric {
			return r
		}
	}
	t.Fatalf("no result for %s %s", cell, metric)
	return RegressResult{}
}

func TestCompareBaseline(t *testing.T) {
	b := fixtureBaseline(t)
	cases := []struct {
		run   string
		want  map[string]string // cell -> status of "bad windows"
		worse bool
	}{
		{"rerun", map[string]string{"legacy": RegressSame, "socket-transfer": RegressInconclusive}, false},
		{"double", map[string]string{"legacy": RegressWorse, "socket-transfer": RegressInconclusive}, true},
		{"broken", map[string]string{"legacy": RegressSame, "socket-transfer": RegressWorse}, true},
	}
	for _, c := range cases {
		t.Run(c.run, func(t *testing.T) {
			g, err := CompareBaseline(b, compareFixture(t, c.run), RegressOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for cell, want := range c.want {
				if r := statusOf(t, g, cell, "bad windows"); r.Status != want {
					t.Errorf("%s: %s, want %s: %s", cell, r.Status, want, r.Detail)
				}
			}
			if g.Worse() != c.worse {
				t.Errorf("Worse() = %v, want %v", g.Worse(), c.worse)
			}
			if len(g.Warnings) != 0 {
				t.Errorf("warnings %q for the same environment", g.Warnings)
			}
		})
	}
}

func TestCompareBaselineRefuses(t *testing.T) {
	b := fixtureBaseline(t)
	other := compareFixture(t, "rerun")
	other.Scenario = "exhaustion"
	_, err := CompareBaseline(b, other, RegressOptions{})
	var mm *Mismatch
	if !errors.As(err, &mm) || !strings.Contains(err.Error(), `"recorded"`) ||
		!strings.Contains(err.Error(), `"exhaustion"`) {
		t.Errorf("another scenario: %v, want a mismatch naming both", err)
	}
	fewer := compareFixture(t, "rerun")
	fewer.Cells = fewer.Cells[:1]
	if _, err := CompareBaseline(b, fewer, RegressOptions{}); !errors.As(err, &mm) ||
		!strings.Contains(err.Error(), "only in the baseline: [socket-transfer]") {
		t.Errorf("another cell set: %v", err)
	}
	long := compareFixture(t, "rerun")
	long.Env["mode"] = "long"
	if _, err := CompareBaseline(b, long, RegressOptions{}); !errors.As(err, &mm) {
		t.Errorf("another mode: %v", err)
	}
	b.Schema = "faultlab.baseline/v0"
	path := filepath.Join(t.TempDir(), "old.json")
	if err := writeJSONFile(path, b); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBaseline(path); err == nil || !strings.Contains(err.Error(), "faultlab.baseline/v0") {
		t.Errorf("another schema: %v", err)
	}
}

func TestCompareBaselineWarns(t *testing.T) {
	b := fixtureBaseline(t)
	r := compareFixture(t, "rerun")
	r.Env["kernel"] = "6.1.0-28-amd64"
	r.Cells[0].Services = []ServiceMeta{{Name: "lb", Kind: "haproxy", Version: "3.0.11"}}
	b.Cells[0].Services = []ServiceMeta{{Name: "lb", Kind: "haproxy", Version: "2.6.12"}}
	g, err := CompareBaseline(b, r, RegressOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(g.Warnings, "\n")
	if !strings.Contains(w, "kernel differs") || !strings.Contains(w, "2.6.12") || !strings.Contains(w, "3.0.11") {
		t.Errorf("warnings: %q", g.Warnings)
	}
}

// TestOddsRatioCI checks the conditional exact interval against R: fisher.test(matrix(c(3,1,1,3),2)) (the
// tea-tasting example) gives the 95% interval [0.2117329, 621.9337505]. R's upper end comes from uniroot's
// default tolerance: at 621.93 P(X <= 3) is 0.02517, not 0.025 (the tail, 1+16psi+36psi^2+16psi^3 over that
// plus psi^4, computed by hand), so the upper end is checked by its defining equation and within 1% of R's.
func TestOddsRatioCI(t *testing.T) {
	iv := OddsRatioCI(1, 4, 3, 4, 0.025)
	tail := func(psi float64) float64 {
		s := 1 + 16*psi + 36*psi*psi + 16*psi*psi*psi
		return s / (s + psi*psi*psi*psi)
	}
	if math.Abs(iv.Lo-0.2117329) > 1e-5 || math.Abs(iv.Hi-621.9337505)/621.93 > 0.01 ||
		math.Abs(tail(iv.Hi)-0.025) > 1e-9 {
		t.Errorf("interval %+v (P(X<=3) at Hi %g), want [0.2117329, ~621.93] with P = 0.025", iv, tail(iv.Hi))
	}
	if iv := OddsRatioCI(0, 10, 0, 10, 0.01); iv.Lo != 0 || !math.IsInf(iv.Hi, 1) {
		t.Errorf("0 of 10 vs 0 of 10: %+v, want [0, inf]", iv)
	}
}

func TestDispersion(t *testing.T) {
	if d := dispersion([]int{20, 200, 20, 200, 20, 200}); d != 1 {
		t.Errorf("equal rounds: %g, want 1", d)
	}
	// 4% and 39% of 200 (the drift docs/reload.md saw between runs, here between rounds)
	if d := dispersion([]int{8, 200, 78, 200}); d < 20 {
		t.Errorf("drifting rounds: %g, want far above 1", d)
	}
}

// TestCompareFalseAlarms checks the comparison's error rates by simulation (seeded): with the baseline and
// the run drawn from the same bad-reload fraction, worse comes out at most alpha of the time (one cell and
// metric: Holm over one test is the test itself); with the run's odds exactly twice the baseline's (at the
// margin), same comes out at most alpha of the time; and a doubling of 10% over 600 reloads is found worse
// most of the time. Each rate is allowed 3 binomial standard errors over its bound.
func TestCompareFalseAlarms(t *testing.T) {
	const reps, n, alpha = 2000, 600, 0.01
	rng := rand.New(rand.NewPCG(1, 2))
	draw := func(p float64) int {
		k := 0
		for range n {
			if rng.Float64() < p {
				k++
			}
		}
		return k
	}
	atMargin := func(p float64) float64 { o := 2 * p / (1 - p); return o / (1 + o) }
	rate := func(p1, p2 float64, status string) float64 {
		hits := 0
		for range reps {
			rs := []RegressResult{regressOne("c", "bad windows", draw(p1), n, nil, draw(p2), n, nil,
				RegressOptions{Alpha: alpha}.withDefaults())}
			decideRegress(rs, RegressOptions{Alpha: alpha}.withDefaults())
			if rs[0].Status == status {
				hits++
			}
		}
		return float64(hits) / reps
	}
	bound := alpha + 3*math.Sqrt(alpha*(1-alpha)/reps)
	worse0, same2, worse2 := rate(0.1, 0.1, RegressWorse), rate(0.1, atMargin(0.1), RegressSame),
		rate(0.1, 0.2, RegressWorse)
	t.Logf("%d reloads each, %d trials: no change worse %.4f; odds ratio 2 same %.4f; 10%% -> 20%% worse %.3f",
		n, reps, worse0, same2, worse2)
	if worse0 > bound {
		t.Errorf("same fraction: worse %.4f of the time, want at most %.4f", worse0, bound)
	}
	if same2 > bound {
		t.Errorf("odds ratio 2: same %.4f of the time, want at most %.4f", same2, bound)
	}
	if worse2 < 0.9 {
		t.Errorf("doubling 10%% over %d reloads: worse only %.3f of the time", n, worse2)
	}
}

// TestCompareRecordedNightly compares two real long-mode runs of scenarios/reload-thin.yaml, recorded by
// scripts/nightly.sh on 2026-12-03 (their results.json under testdata/compare/nightly-*), with the committed
// baseline results/baselines/reload-thin.json. The plain rerun has no worse cell. The run of the broken copy
// (socket-transfer's row switched to the legacy reload) had a quiet machine: legacy 7 of 116 bad reloads,
// the broken socket-transfer 4 of 121, fewer than the 9 of ~110 a comparison with a baseline of 0 needs at
// alpha 0.01 over 6 tests (TestNightlyPower), so the comparison is inconclusive there, never same or
// better; what fails the nightly job is the run's own claim "socket-transfer has no resets or refusals".
// A second run of the broken copy (nightly-broken2, with a capture probe added) had legacy's bursts back:
// socket-transfer 21 of 108 bad reloads, found worse in both metrics.
func TestCompareRecordedNightly(t *testing.T) {
	b, err := ReadBaseline(filepath.Join("baselines", "reload-thin.json"))
	if err != nil {
		t.Fatal(err)
	}
	compare := func(run string) (*Regression, *Report) {
		t.Helper()
		r, err := ReadRunReport(filepath.Join("testdata", "compare", run))
		if err != nil {
			t.Fatal(err)
		}
		g, err := CompareBaseline(b, r, RegressOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return g, r
	}
	if g, _ := compare("nightly-rerun"); g.Worse() {
		t.Errorf("the rerun is worse than its baseline: %+v", g.Results)
	}
	g, r := compare("nightly-broken")
	for _, res := range g.Results {
		if res.Cell == "socket-transfer" && res.Status != RegressInconclusive && res.Status != RegressWorse {
			t.Errorf("broken socket-transfer, %s: %s (%s), want inconclusive or worse", res.Metric, res.Status,
				res.Detail)
		}
	}
	g2, _ := compare("nightly-broken2")
	var worse []string
	for _, res := range g2.Results {
		if res.Status == RegressWorse {
			worse = append(worse, res.Cell+"/"+res.Metric)
		}
	}
	if strings.Join(worse, ",") != "socket-transfer/bad windows,socket-transfer/reset windows" {
		t.Errorf("second broken run: worse %q, want socket-transfer's bad and reset windows", worse)
	}
	unmet, failed := Unmet(r.Verdicts, true)
	if !failed || len(unmet) != 1 || unmet[0].Cell != "socket-transfer" || unmet[0].Status != StatusFails {
		t.Errorf("the broken run's unmet claims: %+v, want socket-transfer's resets: none failing", unmet)
	}
}
