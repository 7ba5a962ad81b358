package results

import (
	"math/big"
	"reflect"
	"strings"
	"testing"
)

// TestStratifiedOneStratumIsFisher: with one round the exact stratified test is the one-sided Fisher exact test,
// both ways.
func TestStratifiedOneStratumIsFisher(t *testing.T) {
	tests := []struct {
		name       string
		a, n, b, m int
	}{
		{"tea_tasting", 1, 4, 3, 4},
		{"3of10_vs_7of10", 3, 10, 7, 10},
		{"0of80_vs_23of80", 0, 80, 23, 80},
		{"2of80_vs_23of80", 2, 80, 23, 80},
		{"equal_halves", 50, 100, 50, 100},
		{"recorded_run_0of19_vs_1of18", 0, 19, 1, 18},
		{"greater", 23, 80, 0, 80},
		{"empty_group", 0, 0, 5, 10},
		{"5of270k_vs_30of270k", 5, 270000, 30, 270000},
		{"mode_far_below", 900, 1000000, 100, 1000000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			less, greater := StratifiedTails([]Stratum{{ABad: tc.a, AWindows: tc.n, BBad: tc.b, BWindows: tc.m}})
			// log-gamma of counts near a million carries ~1e-10 relative error into both implementations:
			// there, both are checked against the exact big-float recurrence
			want, wantG, tol := FisherLess(tc.a, tc.n, tc.b, tc.m), FisherLess(tc.b, tc.m, tc.a, tc.n), 1e-11
			if tc.n > 1000 {
				want, wantG, tol = exactFisherLess(tc.a, tc.n, tc.b, tc.m), exactFisherLess(tc.b, tc.m, tc.a, tc.n), 1e-7
				approx(t, "FisherLess", FisherLess(tc.a, tc.n, tc.b, tc.m), want, tol*want+1e-300)
			}
			approx(t, "less", less, want, tol*want+1e-300)
			approx(t, "greater", greater, wantG, tol*wantG+1e-300) // A more than B = B fewer than A
		})
	}
}

// TestStratifiedExact checks the convolution against a brute-force sum, in exact rational arithmetic, over every
// combination of the strata's counts.
func TestStratifiedExact(t *testing.T) {
	tests := []struct {
		name   string
		strata []Stratum
	}{
		{"two_rounds", []Stratum{{0, 1, 30, 4, 30}, {1, 0, 30, 3, 30}}},
		{"three_unequal_rounds", []Stratum{{0, 2, 12, 5, 20}, {1, 0, 25, 2, 18}, {2, 3, 9, 1, 11}}},
		{"a_round_without_bad", []Stratum{{0, 0, 30, 0, 30}, {1, 1, 30, 6, 30}}},
		{"a_worse", []Stratum{{0, 5, 30, 1, 30}, {1, 4, 30, 2, 30}, {2, 6, 30, 0, 30}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantLess, wantGreater := bruteStratified(tc.strata)
			less, greater := StratifiedTails(tc.strata)
			approx(t, "less", less, wantLess, 1e-12)
			approx(t, "greater", greater, wantGreater, 1e-12)
			if less+greater < 1-1e-12 {
				t.Errorf("less %g + greater %g < 1: the tails share the observed point", less, greater)
			}
		})
	}
}

// bruteStratified enumerates every vector of A's counts, with probabilities from exact binomial coefficients.
func bruteStratified(strata []Stratum) (less, greater float64) {
	obs := 0
	type point struct {
		x int
		p *big.Rat
	}
	dist := []point{{0, big.NewRat(1, 1)}}
	for _, s := range strata {
		obs += s.ABad
		n, tot := s.AWindows+s.BWindows, s.ABad+s.BBad
		den := new(big.Int).Binomial(int64(n), int64(s.AWindows))
		var next []point
		for _, d := range dist {
			for x := 0; x <= min(tot, s.AWindows); x++ {
				if s.AWindows-x > n-tot {
					continue
				}
				num := new(big.Int).Mul(new(big.Int).Binomial(int64(tot), int64(x)),
					new(big.Int).Binomial(int64(n-tot), int64(s.AWindows-x)))
				p := new(big.Rat).SetFrac(num, den)
				next = append(next, point{d.x + x, new(big.Rat).Mul(d.p, p)})
			}
		}
		dist = next
	}
	l, g := new(big.Rat), new(big.Rat)
	for _, d := range dist {
		if d.x <= obs {
			l.Add(l, d.p)
		}
		if d.x >= obs {
			g.Add(g, d.p)
		}
	}
	lf, _ := l.Float64()
	gf, _ := g.Float64()
	return lf, gf
}

// TestStratifiedRespectsDrift: A ran most of its windows in a quiet round and B in a busy one. Pooled, A looks
// much better (Fisher p ~ 1e-5); within each round they are alike, which the stratified test sees.
func TestStratifiedRespectsDrift(t *testing.T) {
	strata := []Stratum{{Rep: 0, ABad: 0, AWindows: 50, BBad: 0, BWindows: 10},
		{Rep: 1, ABad: 5, AWindows: 10, BBad: 25, BWindows: 50}}
	pooled := FisherLess(5, 60, 25, 60)
	strat := StratifiedLess(strata)
	if pooled > 1e-4 || strat < 0.3 {
		t.Errorf("pooled p=%g, stratified p=%g: want the pooled test fooled by the drift, the stratified not",
			pooled, strat)
	}
}

func TestCompareStratified(t *testing.T) {
	a := &CellStats{Cell: "a", WindowKind: WindowReload, Rounds: []RoundCounts{
		{Rep: 0, Windows: 30, BadWindows: 0, ResetWindows: 0}, {Rep: 1, Windows: 30, BadWindows: 1},
		{Rep: 3, Windows: 30, BadWindows: 0}}}
	b := &CellStats{Cell: "b", WindowKind: WindowReload, Rounds: []RoundCounts{
		{Rep: 0, Windows: 30, BadWindows: 4, ResetWindows: 4}, {Rep: 1, Windows: 30, BadWindows: 3, ResetWindows: 1},
		{Rep: 2, Windows: 30, BadWindows: 9}}}
	c := Compare(a, b)
	wantStrata := []Stratum{{0, 0, 30, 4, 30}, {1, 1, 30, 3, 30}}
	if !reflect.DeepEqual(c.Strata, wantStrata) || !reflect.DeepEqual(c.Unmatched, []int{2, 3}) ||
		c.ABad != 1 || c.AWindows != 60 || c.BBad != 7 || c.BWindows != 60 || c.Rounds() != 2 {
		t.Errorf("Compare = %+v", c)
	}
	less, greater := bruteStratified(wantStrata)
	approx(t, "p", c.PValue, less, 1e-12)
	approx(t, "reverse p", c.ReverseP, greater, 1e-12)
	for _, want := range []string{"exact stratified (conditional) test on bad windows per round, 2 strata",
		"rounds 2, 3 ran in one cell only"} {
		if !strings.Contains(c.Method, want) {
			t.Errorf("method %q lacks %q", c.Method, want)
		}
	}
	r := CompareResets(a, b)
	if r.Measure != "reset windows" || r.BBad != 5 || !strings.Contains(r.Method, "on reset windows") {
		t.Errorf("CompareResets = %+v", r)
	}
	// without per-round counts: one stratum, the whole cells, i.e. Fisher's test
	p := Compare(&CellStats{Cell: "x", Windows: 80}, &CellStats{Cell: "y", Windows: 80, BadWindows: 23})
	if len(p.Strata) != 1 || !strings.Contains(p.Method, "1 stratum") ||
		!strings.Contains(p.Method, "no per-round counts") {
		t.Errorf("pooled Compare = %+v", p)
	}
	approx(t, "pooled p", p.PValue, FisherLess(0, 80, 23, 80), 1e-12*p.PValue)
}
