package results

import (
	"math"
	"math/big"
	"strconv"
	"testing"
	"time"
)

func approx(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.IsNaN(got) || math.Abs(got-want) > tol {
		t.Errorf("%s = %.10g, want %.10g ± %g", name, got, want, tol)
	}
}

// Newcombe (1998), "Two-sided confidence intervals for the single proportion", Statistics in Medicine 17,
// Table I: method 3 (Wilson score) and method 5 (Clopper-Pearson exact), rounded to 4 decimals.
var newcombe = []struct {
	name       string
	k, n       int
	wilson, cp Interval
}{
	{"81of263", 81, 263, Interval{0.2553, 0.3662}, Interval{0.2527, 0.3676}},
	{"15of148", 15, 148, Interval{0.0624, 0.1605}, Interval{0.0578, 0.1617}},
	{"0of20", 0, 20, Interval{0, 0.1611}, Interval{0, 0.1684}},
	{"1of29", 1, 29, Interval{0.0061, 0.1718}, Interval{0.0009, 0.1776}},
}

func TestWilson(t *testing.T) {
	for _, tc := range newcombe {
		t.Run(tc.name, func(t *testing.T) {
			got := Wilson(tc.k, tc.n, 0.95)
			approx(t, "lo", got.Lo, tc.wilson.Lo, 5e-5)
			approx(t, "hi", got.Hi, tc.wilson.Hi, 5e-5)
		})
	}
	t.Run("empty", func(t *testing.T) {
		if got := Wilson(0, 0, 0.95); got != (Interval{0, 1}) {
			t.Errorf("Wilson(0,0) = %v, want [0,1]", got)
		}
	})
}

func TestClopperPearson(t *testing.T) {
	for _, tc := range newcombe {
		t.Run(tc.name, func(t *testing.T) {
			got := ClopperPearson(tc.k, tc.n, 0.95)
			approx(t, "lo", got.Lo, tc.cp.Lo, 5e-5)
			approx(t, "hi", got.Hi, tc.cp.Hi, 5e-5)
		})
	}
	for _, n := range []int{1, 3, 80, 270000} {
		t.Run("zero_of_"+strconv.Itoa(n), func(t *testing.T) {
			got := ClopperPearson(0, n, 0.95)
			approx(t, "lo", got.Lo, 0, 0)
			approx(t, "hi", got.Hi, 1-math.Pow(0.025, 1/float64(n)), 1e-9*max(1, got.Hi))
		})
	}
	t.Run("all_of_10", func(t *testing.T) {
		got := ClopperPearson(10, 10, 0.95)
		approx(t, "lo", got.Lo, math.Pow(0.025, 0.1), 1e-9)
		approx(t, "hi", got.Hi, 1, 0)
	})
}

func TestFisherLess(t *testing.T) {
	// Exact values of R's fisher.test(matrix(c(a, b, n-a, m-b), 2), alternative = "less")$p.value, summed over
	// the hypergeometric tail in rational arithmetic (Python's math.comb).
	tests := []struct {
		name       string
		a, n, b, m int
		want       float64
	}{
		{"tea_tasting", 1, 4, 3, 4, 17.0 / 70},
		{"3of10_vs_7of10", 3, 10, 7, 10, 8.9447703998787590e-2},
		{"0of80_vs_23of80", 0, 80, 23, 80, 1.8776556758011356e-8},
		{"2of80_vs_23of80", 2, 80, 23, 80, 2.0288113918406181e-6},
		{"equal_halves", 50, 100, 50, 100, 5.5620778785202105e-1},
		{"greater_is_near_one", 23, 80, 0, 80, 1},
		{"empty_group", 0, 0, 5, 10, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			approx(t, "p", FisherLess(tc.a, tc.n, tc.b, tc.m), tc.want, 1e-12*max(tc.want, 1e-300)+1e-15)
		})
	}
}

func TestFisherLessLargeCounts(t *testing.T) {
	tests := []struct {
		name       string
		a, n, b, m int
	}{
		{"5of270k_vs_30of270k", 5, 270000, 30, 270000},
		{"120of100k_vs_100of100k", 120, 100000, 100, 100000},
		{"10of1M_vs_40of1M", 10, 1000000, 40, 1000000},
		{"mode_far_below", 900, 1000000, 100, 1000000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := exactFisherLess(tc.a, tc.n, tc.b, tc.m)
			got := FisherLess(tc.a, tc.n, tc.b, tc.m)
			approx(t, "p", got, want, 1e-7*want+1e-300)
		})
	}
	t.Run("underflow_is_zero_not_nan", func(t *testing.T) {
		if p := FisherLess(0, 1000000, 5000, 1000000); p != 0 && !(p > 0 && p < 1e-300) {
			t.Errorf("p = %g, want ~0", p)
		}
	})
}

// exactFisherLess sums the tail term by term with big.Float ratios of consecutive terms (an independent
// recurrence, not the log-gamma formula under test).
func exactFisherLess(a, n, b, m int) float64 {
	total, succ := n+m, a+b
	lo := max(0, n-(total-succ))
	prec := uint(256)
	term := new(big.Float).SetPrec(prec).SetFloat64(1) // term(lo) relative
	sum := new(big.Float).SetPrec(prec)
	all := new(big.Float).SetPrec(prec)
	hi := min(n, succ)
	for x := lo; x <= hi; x++ {
		if x > lo {
			// term(x)/term(x-1) = (succ-x+1)(n-x+1) / (x (total-succ-n+x))
			num := new(big.Float).SetPrec(prec).SetInt64(int64(succ-x+1) * int64(n-x+1))
			den := new(big.Float).SetPrec(prec).SetInt64(int64(x) * int64(total-succ-n+x))
			term.Mul(term, num).Quo(term, den)
		}
		all.Add(all, term)
		if x <= a {
			sum.Add(sum, term)
		}
	}
	p, _ := new(big.Float).Quo(sum, all).Float64()
	return p
}

func TestBootstrapRatio(t *testing.T) {
	fails := []int{0, 0, 0, 12, 0, 0, 0, 0, 30, 0}
	atts := []int{100, 100, 100, 100, 100, 100, 100, 100, 100, 100}
	t.Run("deterministic", func(t *testing.T) {
		a := BootstrapRatio(fails, atts, 2000, 0.95, 7)
		b := BootstrapRatio(fails, atts, 2000, 0.95, 7)
		if a != b {
			t.Errorf("same seed gave %v and %v", a, b)
		}
	})
	t.Run("contains_estimate", func(t *testing.T) {
		iv := BootstrapRatio(fails, atts, 2000, 0.95, 1)
		if !iv.Contains(42.0/1000) || iv.Lo > iv.Hi {
			t.Errorf("interval %v does not contain 0.042", iv)
		}
	})
	t.Run("no_failures_degenerates", func(t *testing.T) {
		if iv := BootstrapRatio(make([]int, 10), atts, 2000, 0.95, 1); iv != (Interval{}) {
			t.Errorf("interval %v, want [0,0]", iv)
		}
	})
	t.Run("no_clusters", func(t *testing.T) {
		if iv := BootstrapRatio(nil, nil, 2000, 0.95, 1); iv != (Interval{0, 1}) {
			t.Errorf("interval %v, want [0,1]", iv)
		}
	})
}

func TestQuantile(t *testing.T) {
	ds := make([]time.Duration, 1000) // 1..1000 ms, shuffled order does not matter
	for i := range ds {
		ds[len(ds)-1-i] = time.Duration(i+1) * time.Millisecond
	}
	q := DurationQuantiles(ds)
	want := Quantiles{N: 1000, P50: 500 * time.Millisecond, P90: 900 * time.Millisecond,
		P99: 990 * time.Millisecond, P999: 999 * time.Millisecond, Max: 1000 * time.Millisecond}
	if q != want {
		t.Errorf("DurationQuantiles = %+v, want %+v", q, want)
	}
	if ds[0] != 1000*time.Millisecond {
		t.Error("DurationQuantiles modified its input")
	}
	tests := []struct {
		name string
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"single", []time.Duration{7}, 0.99, 7},
		{"median_of_four_is_second", []time.Duration{1, 2, 3, 4}, 0.5, 2},
		{"p99_of_ten_is_max", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.99, 10},
		{"p0_is_min", []time.Duration{3, 4}, 0, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Quantile(tc.in, tc.q); got != tc.want {
				t.Errorf("Quantile(%v, %g) = %v, want %v", tc.in, tc.q, got, tc.want)
			}
		})
	}
}
