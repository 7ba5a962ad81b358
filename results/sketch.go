package results

import (
	"math/bits"
	"time"
)

// The Sketch layout (HDR-style log-linear histogram over nanoseconds): values below 2^sketchSubBits ns have one
// bucket each (exact); above, every power of two [2^e, 2^(e+1)) is cut into 2^sketchSubBits equal buckets, so a
// bucket is at most 1/128 (0.78%) of its lower bound wide. Values from 2^sketchTopExp ns (about 73 minutes) up
// share one overflow bucket.
const (
	sketchSubBits = 7
	sketchSub     = 1 << sketchSubBits // buckets per power of two
	sketchTopExp  = 42                 // 2^42 ns ≈ 73.3 min, above the hour the sketch must cover
	sketchBuckets = sketchSub + (sketchTopExp-sketchSubBits)*sketchSub
)

// SketchRelativeError bounds the difference between a quantile reported by a Sketch and the exact nearest-rank
// quantile of the same values, relative to the exact one: 1/256 (0.39%), from reporting a bucket's midpoint.
// Below 128 ns and for the maximum the sketch is exact.
const SketchRelativeError = 1.0 / (2 * sketchSub)

// Sketch is a fixed-memory quantile sketch of durations: a log-linear histogram (about 37 KB, whatever the
// number of values) with the exact count, minimum and maximum. A quantile is the midpoint of the bucket that
// holds the nearest-rank value, clamped to [min, max], so it is within SketchRelativeError of the exact
// nearest-rank quantile for values from 0 to about 73 minutes; a quantile above that range is the maximum.
// Negative values (a generator that started early) count as zero in the quantiles; their minimum is kept
// exactly. The zero value is empty and ready.
type Sketch struct {
	n        int
	min, max time.Duration
	counts   [sketchBuckets]uint64
	overflow uint64
}

// sketchIndex returns the bucket of v (v >= 0), or sketchBuckets for the overflow bucket.
func sketchIndex(v uint64) int {
	if v < sketchSub {
		return int(v)
	}
	e := bits.Len64(v) - 1 // v in [2^e, 2^(e+1)), e >= sketchSubBits
	if e >= sketchTopExp {
		return sketchBuckets
	}
	sub := int(v>>(e-sketchSubBits)) - sketchSub
	return sketchSub + (e-sketchSubBits)*sketchSub + sub
}

// sketchBucket returns bucket i's lower bound and width in nanoseconds.
func sketchBucket(i int) (lo, width uint64) {
	if i < sketchSub {
		return uint64(i), 1
	}
	e := (i-sketchSub)/sketchSub + sketchSubBits
	sub := uint64((i-sketchSub)%sketchSub + sketchSub)
	shift := e - sketchSubBits
	return sub << shift, 1 << shift
}

// Add accounts one value.
func (s *Sketch) Add(d time.Duration) {
	if s.n == 0 || d < s.min {
		s.min = d
	}
	if s.n == 0 || d > s.max {
		s.max = d
	}
	s.n++
	i := sketchIndex(uint64(max(d, 0)))
	if i == sketchBuckets {
		s.overflow++
		return
	}
	s.counts[i]++
}

// Merge adds every value of o to s.
func (s *Sketch) Merge(o *Sketch) {
	if o.n == 0 {
		return
	}
	if s.n == 0 || o.min < s.min {
		s.min = o.min
	}
	if s.n == 0 || o.max > s.max {
		s.max = o.max
	}
	s.n += o.n
	s.overflow += o.overflow
	for i, c := range o.counts {
		s.counts[i] += c
	}
}

// N is the number of values added.
func (s *Sketch) N() int { return s.n }

// Quantile returns the q-quantile (0 when empty): see Sketch for its accuracy.
func (s *Sketch) Quantile(q float64) time.Duration {
	if s.n == 0 {
		return 0
	}
	rank := uint64(nearestRank(s.n, q) + 1) // 1-based rank of the nearest-rank value
	var cum uint64
	for i, c := range s.counts {
		cum += c
		if cum >= rank {
			lo, w := sketchBucket(i)
			return min(max(time.Duration(lo+w/2), s.min), s.max)
		}
	}
	return s.max // in the overflow bucket
}

// Quantiles summarises the sketch (N and Max exact; the quantiles within SketchRelativeError).
func (s *Sketch) Quantiles() Quantiles {
	q := Quantiles{N: s.n}
	if s.n == 0 {
		return q
	}
	q.P50, q.P90, q.P99, q.P999 = s.Quantile(0.5), s.Quantile(0.9), s.Quantile(0.99), s.Quantile(0.999)
	q.Max = s.max
	return q
}
