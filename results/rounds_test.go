package results

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func rounds(bads, ns []int) []RoundCounts {
	var out []RoundCounts
	for i := range ns {
		out = append(out, RoundCounts{Rep: i, Windows: ns[i], BadWindows: bads[i]})
	}
	return out
}

func TestDrift(t *testing.T) {
	t.Run("chi_square_by_hand", func(t *testing.T) {
		// pooled 10/40 = 0.25: ((2-5)^2 + (8-5)^2) / (20 * 0.25 * 0.75) = 4.8
		d := DriftOf("c", rounds([]int{2, 8}, []int{20, 20}), 20000, 1)
		approx(t, "chi-square", d.ChiSquare, 4.8, 1e-12)
		// the permutation distribution is the hypergeometric: X^2 >= 4.8 when round 0 has <= 2 or >= 8 of 10,
		// twice the one-sided Fisher tail by symmetry
		exact := 2 * FisherLess(2, 20, 8, 20)
		sd := math.Sqrt(exact * (1 - exact) / 20000)
		approx(t, "Monte Carlo p", d.PValue, exact, 4*sd)
		if d.DF != 1 || d.Min != 0.1 || d.Max != 0.4 || !strings.Contains(d.Test, "Monte Carlo exact") {
			t.Errorf("drift %+v", d)
		}
	})
	t.Run("homogeneous", func(t *testing.T) {
		d := DriftOf("c", rounds([]int{3, 3, 3}, []int{30, 30, 30}), 2000, 1)
		if d.ChiSquare != 0 || d.PValue != 1 || d.PChiSquare != 1 {
			t.Errorf("equal rounds: %+v", d)
		}
	})
	t.Run("drifting_machine", func(t *testing.T) { // the 4% then 39% of bad reloads
		d := DriftOf("legacy", rounds([]int{1, 2, 9, 12}, []int{25, 30, 26, 30}), 2000, 1)
		if d.PValue > 0.001 || d.PChiSquare > 0.001 || !strings.Contains(d.summary(), "machine's state changed") {
			t.Errorf("drift not detected: %+v (%s)", d, d.summary())
		}
	})
	t.Run("deterministic", func(t *testing.T) {
		rs := rounds([]int{1, 4, 2}, []int{30, 30, 30})
		if a, b := DriftOf("c", rs, 2000, 7), DriftOf("c", rs, 2000, 7); !reflect.DeepEqual(a, b) {
			t.Errorf("same seed: %+v vs %+v", a, b)
		}
	})
	t.Run("rounds_without_windows_left_out", func(t *testing.T) {
		if d := DriftOf("c", rounds([]int{1, 0}, []int{30, 0}), 2000, 1); d != nil {
			t.Errorf("one round with windows: %+v, want nil", d)
		}
	})
}

// TestSummaryRounds: a cell with three interleaved rounds gets per-round counts and its drift.
func TestSummaryRounds(t *testing.T) {
	var recs []Record
	var rel []ReloadEvent
	for rep, bursts := range [][]int{{0, 5, 0, 0}, {0, 0, 0, 0}, {3, 0, 7, 1}} {
		r, ev := synthCell("legacy", time.Second, 250*time.Millisecond, bursts)
		for i := range r {
			r[i].Rep = rep
		}
		for i := range ev {
			ev[i].Rep = rep
		}
		ev[0].OK = rep != 1
		recs, rel = append(recs, r...), append(rel, ev...)
	}
	st := Summarize("legacy", recs, rel, SummaryOptions{})
	want := []RoundCounts{
		{Rep: 0, Attempts: 1000, Failures: 5, Windows: 4, BadWindows: 1, ResetWindows: 1, Reloads: 4},
		{Rep: 1, Attempts: 1000, Windows: 4, Reloads: 4, ReloadsFailed: 1},
		{Rep: 2, Attempts: 1000, Failures: 11, Windows: 4, BadWindows: 3, ResetWindows: 3, Reloads: 4}}
	if !reflect.DeepEqual(st.Rounds, want) {
		t.Errorf("rounds %+v, want %+v", st.Rounds, want)
	}
	if st.Drift == nil || st.Drift.Cell != "legacy" || len(st.Drift.Rounds) != 3 || st.Drift.Max != 0.75 {
		t.Errorf("drift %+v", st.Drift)
	}
}
