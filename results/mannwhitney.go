package results

import (
	"cmp"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"
)

// MannWhitney is the two-sided Mann-Whitney U (Wilcoxon rank-sum) test that x and y come from the same
// distribution, against one being stochastically larger: U counts the pairs (x[i], y[j]) with x[i] > y[j]
// (ties count one half), and p comes from the normal approximation with the tie correction and a continuity
// correction (R's wilcox.test(x, y, exact = FALSE, correct = TRUE)). Suited to tens of values or more; with
// fewer than two in either sample p is 1.
func MannWhitney(x, y []float64) (u, p float64) {
	n1, n2 := float64(len(x)), float64(len(y))
	if len(x) < 2 || len(y) < 2 {
		return 0, 1
	}
	type v struct {
		val  float64
		inX  bool
		rank float64
	}
	all := make([]v, 0, len(x)+len(y))
	for _, a := range x {
		all = append(all, v{val: a, inX: true})
	}
	for _, b := range y {
		all = append(all, v{val: b})
	}
	slices.SortFunc(all, func(a, b v) int { return cmp.Compare(a.val, b.val) })
	var rx, ties float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].val == all[i].val {
			j++
		}
		t := float64(j - i)
		ties += t*t*t - t
		for k := i; k < j; k++ {
			if all[k].inX {
				rx += float64(i+j+1) / 2 // the mean of ranks i+1..j
			}
		}
		i = j
	}
	u = rx - n1*(n1+1)/2
	n := n1 + n2
	sigma := math.Sqrt(n1 * n2 / 12 * (n + 1 - ties/(n*(n-1))))
	if sigma == 0 {
		return u, 1
	}
	z := math.Max(math.Abs(u-n1*n2/2)-0.5, 0) / sigma
	return u, math.Min(1, 2*distuv.UnitNormal.Survival(z))
}
