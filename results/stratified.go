package results

import (
	"math"
	"slices"
)

// Stratum is one round of a comparison of cells A and B: the windows each cell ran in that round and how many
// of them were bad (or had resets, for a comparison of resets).
type Stratum struct {
	Rep      int `json:"rep"`
	ABad     int `json:"a_bad"`
	AWindows int `json:"a_windows"`
	BBad     int `json:"b_bad"`
	BWindows int `json:"b_windows"`
}

// StratifiedLess is the exact conditional test, stratified by round, that A has a smaller fraction of bad
// windows than B. Given each stratum's margins (A's windows, B's windows, and the stratum's total of bad
// windows), A's bad windows in the stratum follow a hypergeometric law under the null hypothesis that A and B
// are alike within the round; rounds are independent, so A's total of bad windows follows the convolution of
// the strata's hypergeometrics. The p-value is that convolution's lower tail at A's observed total, summed
// exactly in log space. Rounds may differ from one another (the machine drifts); only within a round are A and
// B compared. With one stratum it is the one-sided Fisher exact test (FisherLess).
func StratifiedLess(strata []Stratum) float64 {
	less, _ := StratifiedTails(strata)
	return less
}

// StratifiedGreater is the reverse one-sided test: that A has a larger fraction of bad windows than B (the
// upper tail of the same convolution, at A's observed total).
func StratifiedGreater(strata []Stratum) float64 {
	_, greater := StratifiedTails(strata)
	return greater
}

// StratifiedTails returns both one-sided p-values of the exact stratified test: A fewer (StratifiedLess) and A
// more (StratifiedGreater), from one convolution.
func StratifiedTails(strata []Stratum) (less, greater float64) {
	l, g := logStratifiedTails(strata)
	return math.Min(1, math.Exp(l)), math.Min(1, math.Exp(g))
}

func logStratifiedTails(strata []Stratum) (less, greater float64) {
	dist := []float64{0} // log P(sum - base = i) over the strata so far
	base, obs := 0, 0
	for _, s := range strata {
		checkCount(s.ABad, s.AWindows)
		checkCount(s.BBad, s.BWindows)
		n, t := s.AWindows+s.BWindows, s.ABad+s.BBad
		lo, hi := max(0, s.AWindows-(n-t)), min(t, s.AWindows)
		obs += s.ABad
		base += lo
		if lo == hi {
			continue // a stratum without choice (no bad window, or one cell without windows) adds a constant
		}
		dist = logConvolve(dist, logHypergeomPMF(lo, hi, t, n, s.AWindows))
	}
	k := obs - base
	return logSumExp(dist[:k+1]), logSumExp(dist[k:])
}

// logHypergeomPMF is log P(X = x) for x in [lo, hi], X the successes in draws items drawn without replacement
// from total items of which succ are successes: the first term from log-gamma, the others by the ratio of
// consecutive terms, P(x+1)/P(x) = (succ-x)(draws-x) / ((x+1)(total-succ-draws+x+1)).
func logHypergeomPMF(lo, hi, succ, total, draws int) []float64 {
	pk := make([]float64, hi-lo+1)
	pk[0] = logHypergeom(lo, succ, total, draws)
	for x := lo; x < hi; x++ {
		pk[x-lo+1] = pk[x-lo] + math.Log(float64(succ-x)*float64(draws-x)/
			(float64(x+1)*float64(total-succ-draws+x+1)))
	}
	return pk
}

// logConvolve convolves two distributions given as log probabilities: each output is the log of a sum of
// products, summed relative to its largest term.
func logConvolve(a, b []float64) []float64 {
	out := make([]float64, len(a)+len(b)-1)
	for s := range out {
		lo, hi := max(0, s-len(b)+1), min(s, len(a)-1)
		m := math.Inf(-1)
		for i := lo; i <= hi; i++ {
			m = max(m, a[i]+b[s-i])
		}
		if math.IsInf(m, -1) {
			out[s] = m
			continue
		}
		var sum float64
		for i := lo; i <= hi; i++ {
			sum += math.Exp(a[i] + b[s-i] - m)
		}
		out[s] = m + math.Log(sum)
	}
	return out
}

// logSumExp is log(sum(exp(xs))), -Inf for none.
func logSumExp(xs []float64) float64 {
	if len(xs) == 0 {
		return math.Inf(-1)
	}
	m := slices.Max(xs)
	if math.IsInf(m, -1) {
		return m
	}
	var s float64
	for _, x := range xs {
		s += math.Exp(x - m)
	}
	return m + math.Log(s)
}

// matchRounds pairs the rounds of two cells by Rep, counting with count (bad or reset windows). Rounds present
// in one cell only cannot be compared within a round: their Reps are returned as unmatched.
func matchRounds(a, b []RoundCounts, count func(*RoundCounts) int) (strata []Stratum, unmatched []int) {
	byRep := map[int]*RoundCounts{}
	for i := range b {
		byRep[b[i].Rep] = &b[i]
	}
	seen := map[int]bool{}
	for i := range a {
		ra := &a[i]
		seen[ra.Rep] = true
		rb, ok := byRep[ra.Rep]
		if !ok {
			unmatched = append(unmatched, ra.Rep)
			continue
		}
		strata = append(strata, Stratum{Rep: ra.Rep, ABad: count(ra), AWindows: ra.Windows, BBad: count(rb),
			BWindows: rb.Windows})
	}
	for _, rb := range b {
		if !seen[rb.Rep] {
			unmatched = append(unmatched, rb.Rep)
		}
	}
	slices.Sort(unmatched)
	return strata, unmatched
}
