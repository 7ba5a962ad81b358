package results

import (
	"cmp"
	"slices"
)

// holmStep is one test's place in Holm's step-down procedure.
type holmStep struct {
	Rank      int     // 1 for the smallest p-value
	Threshold float64 // alpha / (m - Rank + 1): the Holm-adjusted threshold of the test
	Reject    bool
	// Stopped: p is below its threshold, but the step-down stopped at a smaller p-value that was not.
	Stopped bool
}

// holm runs Holm's step-down procedure over the p-values ps, each test at its own level alphas[i] (family-wise
// error at most the largest of them, for any dependence between the tests). Tests are ranked by p-value (ties
// in the given order); the test of rank r is rejected when its p-value is below alpha/(m-r+1) and every test
// of a smaller rank was rejected.
func holm(ps, alphas []float64) []holmStep {
	m := len(ps)
	order := make([]int, m)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int { return cmp.Compare(ps[i], ps[j]) })
	out := make([]holmStep, m)
	going := true
	for r, i := range order {
		thr := alphas[i] / float64(m-r)
		below := ps[i] < thr
		out[i] = holmStep{Rank: r + 1, Threshold: thr, Reject: going && below, Stopped: !going && below}
		going = going && below
	}
	return out
}
