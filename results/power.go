package results

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// DecidePower is the power at which an inconclusive comparison's extra running is estimated.
const DecidePower = 0.8

// SampleSize is the number of windows per cell with which a one-sided test at the given level tells a bad-window
// fraction p1 from p2 with the given power: the normal approximation for two proportions with equal groups,
// n = (z(1-level) sqrt(2 pbar (1-pbar)) + z(power) sqrt(p1(1-p1) + p2(1-p2)))^2 / (p1-p2)^2. It is +Inf when
// p1 == p2.
func SampleSize(p1, p2, level, power float64) float64 {
	if p1 == p2 {
		return math.Inf(1)
	}
	za, zb := distuv.UnitNormal.Quantile(1-level), distuv.UnitNormal.Quantile(power)
	pb := (p1 + p2) / 2
	num := za*math.Sqrt(2*pb*(1-pb)) + zb*math.Sqrt(p1*(1-p1)+p2*(1-p2))
	return num * num / ((p1 - p2) * (p1 - p2))
}

// PseudoRate0 is the rate assumed for a cell that saw 0 bad windows of n when estimating how much more running
// would decide a comparison: the upper end of the one-sided 50% Clopper-Pearson interval for 0 of n, 1-0.5^(1/n)
// (about 0.69/n: the median-unbiased estimate). A zero rate would promise a decision sooner than any data can.
func PseudoRate0(n int) float64 {
	if n <= 0 {
		return 1
	}
	return 1 - math.Pow(0.5, 1/float64(n))
}

// needed estimates how many windows per cell would decide an inconclusive comparison at the observed rates, at
// the one-sided level alpha/m (Holm's smallest threshold in a family of m): the extra windows per cell (0 when
// no estimate is possible, or none is needed by the approximation) and a sentence saying how it was computed.
func needed(c *Comparison, alpha float64, m int, unit string) (int, string) {
	level := alpha / float64(max(m, 1))
	wa, wb, ka, kb := c.AWindows, c.BWindows, c.ABad, c.BBad
	if wa == 0 || wb == 0 {
		return 0, "no estimate of the running needed: a cell has no windows in the rounds compared"
	}
	fa, fb := float64(ka)/float64(wa), float64(kb)/float64(wb)
	switch {
	case ka == 0 && kb == 0:
		return 0, fmt.Sprintf("neither cell had one (0 of %s and 0 of %s %s): no difference to detect at the "+
			"observed rates, so no run length can be estimated", commas(wa), commas(wb), unit)
	case fa == fb:
		return 0, fmt.Sprintf("the observed fractions are equal (%s): no run length decides it at these rates",
			fmtPct(fa))
	}
	ra, rb := fa, fb
	rate := func(name string, k, w int, r float64) string {
		s := fmt.Sprintf("%s %d/%s = %s", name, k, commas(w), fmtPct(float64(k)/float64(w)))
		if k == 0 {
			s += fmt.Sprintf(", floored at %s, the upper end of the one-sided 50%% Clopper-Pearson interval for 0 "+
				"of %s", fmtPct(r), commas(w))
		}
		return s
	}
	if ka == 0 {
		ra = PseudoRate0(wa)
	}
	if kb == 0 {
		rb = PseudoRate0(wb)
	}
	toward := "hold"
	if fa > fb {
		toward = "fail"
	}
	n := int(math.Ceil(SampleSize(ra, rb, level, DecidePower)))
	moreA, moreB := max(0, n-wa), max(0, n-wb)
	s := fmt.Sprintf("at the observed rates (%s; %s) about %s %s per cell would decide it (toward %s) with "+
		"power %g at the one-sided level %s (alpha/%d, Holm's smallest threshold, so whatever the other claims "+
		"do; normal approximation for two proportions)", rate(c.A, ka, wa, ra), rate(c.B, kb, wb, rb), commas(n),
		unit, toward, DecidePower, fmtP(level), m)
	more := max(moreA, moreB)
	if more == 0 {
		return 0, s + "; both cells have that many already: the exact test is more conservative than the " +
			"approximation at such small counts, so expect somewhat more"
	}
	s += fmt.Sprintf(": %s more for %s, %s more for %s", commas(moreA), c.A, commas(moreB), c.B)
	if k := c.Rounds(); k > 0 {
		perRound := float64(wa+wb) / float64(2*k)
		s += fmt.Sprintf(", about %s more rounds at %.0f %s per round", commas(int(math.Ceil(float64(more)/
			perRound))), perRound, unit)
	}
	return more, s
}

// DetectableFraction is the smallest bad-window fraction p1 above p0 that a comparison of n windows against n
// windows (a baseline and a run of the same length) finds worse with the given power at the one-sided level,
// by the normal approximation SampleSize inverts (bisection on p1). With p0 == 0 the approximation does not
// hold: use DetectableFromZero.
func DetectableFraction(p0 float64, n int, level, power float64) float64 {
	lo, hi := p0, 1.0
	for range 60 {
		mid := (lo + hi) / 2
		if SampleSize(p0, mid, level, power) <= float64(n) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// DetectableFromZero is the smallest number of bad windows in n that the one-sided Fisher exact test tells
// from 0 of n at the level: a mitigation whose baseline never failed is found worse once the run has that
// many bad windows (0 when n is too small for any count to be significant).
func DetectableFromZero(n int, level float64) int {
	for k := 1; k <= n; k++ {
		if FisherLess(0, n, k, n) < level {
			return k
		}
	}
	return 0
}
