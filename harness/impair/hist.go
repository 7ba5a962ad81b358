package impair

import "time"

// histBucket is the lateness histogram's resolution; histBuckets of them cover 0 to 50 ms, and longer
// durations land in an overflow bucket whose quantile reads as the maximum.
const (
	histBucket  = 5 * time.Microsecond
	histBuckets = 10_000
)

// hist is a fixed-resolution histogram of non-negative durations (negative ones count as zero).
type hist struct {
	counts [histBuckets + 1]uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

func (h *hist) add(d time.Duration) {
	d = max(d, 0)
	i := min(int(d/histBucket), histBuckets)
	h.counts[i]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

// quantile is the upper edge of the bucket holding the q-quantile (0 when empty).
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	rank = min(max(rank, 1), h.n)
	var c uint64
	for i, k := range h.counts {
		c += k
		if c >= rank {
			if i == histBuckets {
				return h.max
			}
			return min(time.Duration(i+1)*histBucket, h.max)
		}
	}
	return h.max
}

func (h *hist) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}
