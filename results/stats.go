package results

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
)

// DefaultConfidence is the confidence level of every interval the package reports.
const DefaultConfidence = 0.95

// DefaultResamples is the number of bootstrap resamples.
const DefaultResamples = 2000

// Interval is a confidence interval for a proportion or a ratio, both in [0,1].
type Interval struct {
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

// Contains reports whether x lies in the closed interval.
func (i Interval) Contains(x float64) bool { return i.Lo <= x && x <= i.Hi }

// Width is Hi - Lo.
func (i Interval) Width() float64 { return i.Hi - i.Lo }

func checkCount(k, n int) {
	if n < 0 || k < 0 || k > n {
		panic(fmt.Sprintf("results: count %d of %d out of range", k, n))
	}
}

// zFor returns the two-sided standard normal quantile for a confidence level (1.96 for 0.95).
func zFor(conf float64) float64 {
	return distuv.UnitNormal.Quantile(1 - (1-conf)/2)
}

// Wilson returns the Wilson score interval for k successes in n independent trials. With clustered failures the
// trials are not independent and this interval is too narrow; it is reported per connection for reference.
// With n == 0 it returns [0,1].
func Wilson(k, n int, conf float64) Interval {
	checkCount(k, n)
	if n == 0 {
		return Interval{0, 1}
	}
	z := zFor(conf)
	nf, p := float64(n), float64(k)/float64(n)
	denom := 1 + z*z/nf
	center := (p + z*z/(2*nf)) / denom
	half := z / denom * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf))
	return Interval{max(0, center-half), min(1, center+half)}
}

// ClopperPearson returns the exact (Clopper-Pearson) interval for k successes in n trials, from Beta quantiles.
// For k == 0 the upper bound is 1-((1-conf)/2)^(1/n). With n == 0 it returns [0,1].
func ClopperPearson(k, n int, conf float64) Interval {
	checkCount(k, n)
	if n == 0 {
		return Interval{0, 1}
	}
	a := (1 - conf) / 2
	iv := Interval{0, 1}
	if k > 0 {
		iv.Lo = distuv.Beta{Alpha: float64(k), Beta: float64(n - k + 1)}.Quantile(a)
	}
	if k < n {
		iv.Hi = distuv.Beta{Alpha: float64(k + 1), Beta: float64(n - k)}.Quantile(1 - a)
	}
	return iv
}

// ClusterExact is a conservative exact interval for a failure rate whose failures come in bursts, one burst per
// window: the Clopper-Pearson interval of the fraction of bad windows (bad of windows) turned into a rate per
// attempt with windows/attempts, counting one failure per bad window for the lower bound and maxPerWindow (at
// least 1) for the upper bound. The upper bound assumes no window fails worse than the worst one seen. With no
// attempts or no windows it returns [0,1].
func ClusterExact(bad, windows, maxPerWindow, attempts int, conf float64) Interval {
	if attempts == 0 || windows == 0 {
		return Interval{0, 1}
	}
	cp := ClopperPearson(bad, windows, conf)
	scale := float64(windows) / float64(attempts)
	return Interval{min(1, cp.Lo*scale), min(1, cp.Hi*scale*float64(max(maxPerWindow, 1)))}
}

// FisherLess is the one-sided Fisher exact test that group A's proportion (a of n) is smaller than group B's
// (b of m): the probability, given both margins, of a count in A's cell at most a. It equals R's
// fisher.test(matrix(c(a, b, n-a, m-b), 2), alternative = "less")$p.value. Terms are computed in log space, so
// counts in the millions neither overflow nor lose the p-value (which may underflow to 0 below ~1e-308).
func FisherLess(a, n, b, m int) float64 {
	return math.Min(1, math.Exp(logFisherLess(a, n, b, m)))
}

func logFisherLess(a, n, b, m int) float64 {
	checkCount(a, n)
	checkCount(b, m)
	total, succ := n+m, a+b
	lo := max(0, n-(total-succ))
	maxLog, sum := math.Inf(-1), 0.0 // sum of exp(term - maxLog)
	for x := a; x >= lo; x-- {
		l := logHypergeom(x, succ, total, n)
		if l > maxLog {
			sum = sum*math.Exp(maxLog-l) + 1
			maxLog = l
			continue
		}
		sum += math.Exp(l - maxLog)
		if l < maxLog-60 { // past the mode the terms only shrink; the rest add < 1e-20 relative
			break
		}
	}
	return maxLog + math.Log(sum)
}

// logHypergeom is log P(X = x) for X the successes in n draws without replacement from total items of which
// succ are successes.
func logHypergeom(x, succ, total, n int) float64 {
	return logChoose(succ, x) + logChoose(total-succ, n-x) - logChoose(total, n)
}

func logChoose(n, k int) float64 {
	return lgamma(n+1) - lgamma(k+1) - lgamma(n-k+1)
}

func lgamma(n int) float64 {
	v, _ := math.Lgamma(float64(n))
	return v
}

// BootstrapRatio is the percentile bootstrap interval of sum(num)/sum(den) when whole clusters (windows) are
// resampled with replacement: resamples draws of len(num) clusters, from a PCG generator seeded with seed, so
// the result is deterministic. A resample with a zero denominator counts as ratio 0. With no clusters it
// returns [0,1].
func BootstrapRatio(num, den []int, resamples int, conf float64, seed uint64) Interval {
	if len(num) != len(den) {
		panic("results: bootstrap numerator and denominator lengths differ")
	}
	k := len(num)
	if k == 0 || resamples <= 0 {
		return Interval{0, 1}
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ratios := make([]float64, resamples)
	for i := range ratios {
		var sn, sd int
		for range k {
			j := rng.IntN(k)
			sn += num[j]
			sd += den[j]
		}
		if sd > 0 {
			ratios[i] = float64(sn) / float64(sd)
		}
	}
	slices.Sort(ratios)
	a := (1 - conf) / 2
	return Interval{ratios[nearestRank(resamples, a)], ratios[nearestRank(resamples, 1-a)]}
}

// nearestRank returns the 0-based index of the q-quantile by the nearest-rank method in n sorted values.
func nearestRank(n int, q float64) int {
	r := int(math.Ceil(q*float64(n) - 1e-9))
	return min(max(r, 1), n) - 1
}

// Quantile returns the nearest-rank q-quantile of sorted durations (0 when there are none).
func Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[nearestRank(len(sorted), q)]
}

// Quantiles summarises a set of durations. N and Max are exact. In CellStats (computed by a Sketch, in fixed
// memory) each quantile is the midpoint of the histogram bucket holding the nearest-rank value, within
// SketchRelativeError (1/256, 0.39%) of the exact nearest-rank quantile and never outside [min, max];
// DurationQuantiles computes them exactly.
type Quantiles struct {
	N    int           `json:"n"`
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
}

// DurationQuantiles computes the exact nearest-rank Quantiles of ds (which it does not modify). It sorts a copy,
// so it holds every value in memory: a Sketch summarises a stream in fixed memory.
func DurationQuantiles(ds []time.Duration) Quantiles {
	s := slices.Clone(ds)
	slices.Sort(s)
	q := Quantiles{N: len(s)}
	if len(s) == 0 {
		return q
	}
	q.P50, q.P90, q.P99, q.P999 = Quantile(s, 0.5), Quantile(s, 0.9), Quantile(s, 0.99), Quantile(s, 0.999)
	q.Max = s[len(s)-1]
	return q
}
