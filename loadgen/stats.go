package loadgen

import (
	"math"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"

	"github.com/faultlab/faultlab/results"
)

// Stats are live counters of a run's measured phase, safe to read while the run goes on (progress bars).
// The zero value is ready; pass it in Config.Stats. Counters are read one by one, so a snapshot taken during
// the run may be off by the attempts that finished while it was taken.
type Stats struct {
	launched atomic.Int64
	done     atomic.Int64
	ok       atomic.Int64
	failed   atomic.Int64
	maxLag   atomic.Int64
}

// StatsSnapshot is a plain copy of Stats.
type StatsSnapshot struct {
	Launched int64 // attempts begun
	Done     int64 // attempts finished
	OK       int64
	Failed   int64
	InFlight int64 // begun, not finished
	MaxLag   time.Duration
}

// Snapshot reads the counters. Launched is read last, so it is never below Done, OK or Failed.
func (s *Stats) Snapshot() StatsSnapshot {
	snap := StatsSnapshot{OK: s.ok.Load(), Failed: s.failed.Load(), Done: s.done.Load(),
		MaxLag: time.Duration(s.maxLag.Load())}
	snap.Launched = s.launched.Load()
	snap.InFlight = snap.Launched - snap.Done
	return snap
}

func (s *Stats) begin(lag time.Duration) {
	s.launched.Add(1)
	for cur := s.maxLag.Load(); int64(lag) > cur; cur = s.maxLag.Load() {
		if s.maxLag.CompareAndSwap(cur, int64(lag)) {
			break
		}
	}
}

func (s *Stats) end(ok bool) {
	if ok {
		s.ok.Add(1)
	} else {
		s.failed.Add(1)
	}
	s.done.Add(1)
}

// outcomeCounts counts attempts per outcome, concurrently: one counter per entry of results.Outcomes, the
// last one for an outcome not in that list (a workload's bug), reported as results.OutcomeOther.
type outcomeCounts [16]atomic.Int64

func (c *outcomeCounts) add(o results.Outcome) {
	i := slices.Index(results.Outcomes, o)
	if i < 0 || i >= len(c)-1 {
		i = len(c) - 1
	}
	c[i].Add(1)
}

// snapshot returns the non-zero counts.
func (c *outcomeCounts) snapshot() map[results.Outcome]int64 {
	m := make(map[results.Outcome]int64)
	for i := range c {
		if n := c[i].Load(); n > 0 {
			o := results.OutcomeOther
			if i < len(results.Outcomes) && i < len(c)-1 {
				o = results.Outcomes[i]
			}
			m[o] += n
		}
	}
	return m
}

// lagHist is a concurrent log-linear histogram of non-negative durations: 64 linear sub-buckets per power of
// two, so a quantile is within 1.6% of the true value. It needs no lock and fixed memory (~30 KiB).
type lagHist struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histBuckets = histSub + (64-histSubBits)*histSub
)

func histBucket(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1
	top := v >> shift // in [histSub, 2*histSub)
	return histSub + shift*histSub + int(top-histSub)
}

// histUpper is the largest value that falls in bucket b.
func histUpper(b int) uint64 {
	if b < histSub {
		return uint64(b)
	}
	shift := (b - histSub) / histSub
	top := uint64(histSub + (b-histSub)%histSub)
	return (top+1)<<shift - 1
}

func (h *lagHist) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histBucket(uint64(d))].Add(1)
	h.n.Add(1)
	for cur := h.max.Load(); int64(d) > cur; cur = h.max.Load() {
		if h.max.CompareAndSwap(cur, int64(d)) {
			break
		}
	}
}

// quantile returns the nearest-rank q-quantile (0 < q <= 1) as its bucket's upper bound, capped at the maximum.
// Call it after all adds have finished.
func (h *lagHist) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	var cum uint64
	for b := range h.counts {
		cum += h.counts[b].Load()
		if cum >= rank {
			return min(time.Duration(histUpper(b)), time.Duration(h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}
