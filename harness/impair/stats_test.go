package impair_test

import (
	"math"
	"testing"
)

// binomInterval is the two-sided acceptance region [lo, hi] of X ~ Binomial(n, p) at the given level: each
// tail outside it has probability at most (1-level)/2, so an engine with exactly loss p fails a check
// against it with probability at most 1-level.
func binomInterval(n int, p, level float64) (lo, hi int) {
	tail := (1 - level) / 2
	logp, logq := math.Log(p), math.Log1p(-p)
	lg := func(k int) float64 { v, _ := math.Lgamma(float64(k) + 1); return v }
	pmf := func(k int) float64 { return math.Exp(lg(n) - lg(k) - lg(n-k) + float64(k)*logp + float64(n-k)*logq) }
	var c float64
	for lo = 0; lo <= n; lo++ {
		if c+pmf(lo) > tail {
			break
		}
		c += pmf(lo)
	}
	c = 0
	for hi = n; hi >= 0; hi-- {
		if c+pmf(hi) > tail {
			break
		}
		c += pmf(hi)
	}
	return lo, hi
}

func TestBinomInterval(t *testing.T) {
	lo, hi := binomInterval(20000, 0.01, 0.99)
	// Normal approximation: 200 ± 2.576*sqrt(198) = 200 ± 36.2.
	if lo < 160 || lo > 166 || hi < 234 || hi > 240 {
		t.Errorf("Binomial(20000, 0.01) 99%%: [%d, %d], want about [164, 236]", lo, hi)
	}
}
