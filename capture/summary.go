package capture

import (
	"math"
	"time"
)

// ConnSummary aggregates the connections of a capture.
type ConnSummary struct {
	Total uint64 `json:"total"`
	// Partial connections had no SYN captured (they began before the capture).
	Partial     uint64 `json:"partial"`
	Established uint64 `json:"established"`
	// Refused: SYN answered by RST. Unanswered: SYN seen, no SYN-ACK and no RST.
	Refused        uint64 `json:"refused"`
	Unanswered     uint64 `json:"unanswered"`
	WithSYNRetrans uint64 `json:"with_syn_retrans"`
	WithZeroWindow uint64 `json:"with_zero_window"`
	// ZeroWindowBy counts connections in which an end with this role advertised a zero window.
	ZeroWindowBy map[Role]uint64 `json:"zero_window_by"`
	// ClosedFirstBy counts connections by the role of the end whose FIN or RST came first; ClosedFirstSide
	// by "initiator" or "responder"; ResetFirst counts those whose first close was an RST.
	ClosedFirstBy   map[Role]uint64   `json:"closed_first_by"`
	ClosedFirstSide map[string]uint64 `json:"closed_first_side"`
	ResetFirst      uint64            `json:"reset_first"`
	// TimeWaitBy counts connections by the role of the end the FINs leave in TIME_WAIT (Conn.TimeWait: a
	// simultaneous close counts for both ends); Simultaneous counts those.
	TimeWaitBy   map[Role]uint64 `json:"time_wait_by"`
	Simultaneous uint64          `json:"simultaneous_close"`
	// Handshake is over established connections whose SYN was captured; ZeroWindowTime over connections
	// with a zero window (both ends' periods summed).
	Handshake      DurationStats `json:"handshake"`
	ZeroWindowTime DurationStats `json:"zero_window_time"`
}

// DurationStats summarises durations; quantiles come from a log-bucketed histogram (within 1%).
type DurationStats struct {
	Count uint64        `json:"count"`
	Min   time.Duration `json:"min_ns"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

type summaryAgg struct {
	s          ConnSummary
	handshake  DurationHist
	zeroWindow DurationHist
}

func newSummaryAgg() summaryAgg {
	return summaryAgg{s: ConnSummary{ZeroWindowBy: map[Role]uint64{}, ClosedFirstBy: map[Role]uint64{},
		ClosedFirstSide: map[string]uint64{}, TimeWaitBy: map[Role]uint64{}}}
}

func (g *summaryAgg) add(c *Conn) {
	s := &g.s
	s.Total++
	switch {
	case c.Partial:
		s.Partial++
	case c.Established:
		s.Established++
		g.handshake.Add(c.Handshake)
	case c.Refused:
		s.Refused++
	case c.Responder.Packets == 0:
		s.Unanswered++
	}
	if c.SYNRetrans > 0 {
		s.WithSYNRetrans++
	}
	if c.ZeroWindow {
		s.WithZeroWindow++
		g.zeroWindow.Add(c.Initiator.ZeroWindowTime + c.Responder.ZeroWindowTime)
		for _, e := range []*ConnEnd{&c.Initiator, &c.Responder} {
			if e.ZeroWindowAdverts > 0 {
				s.ZeroWindowBy[e.Role]++
			}
		}
	}
	switch c.TimeWait {
	case "initiator":
		s.TimeWaitBy[c.Initiator.Role]++
	case "responder":
		s.TimeWaitBy[c.Responder.Role]++
	case "both":
		s.TimeWaitBy[c.Initiator.Role]++
		s.TimeWaitBy[c.Responder.Role]++
		s.Simultaneous++
	}
	if c.ClosedFirst != "" {
		s.ClosedFirstBy[c.ClosedFirstRole]++
		s.ClosedFirstSide[c.ClosedFirst]++
		if c.CloseKind == "rst" {
			s.ResetFirst++
		}
	}
}

func (g *summaryAgg) summary() ConnSummary {
	s := g.s
	s.Handshake = g.handshake.Stats()
	s.ZeroWindowTime = g.zeroWindow.Stats()
	return s
}

// DurationHist summarises a stream of durations in fixed memory: a histogram in buckets growing by 2%, from
// 1 ns to beyond an hour (the zero value is ready to use; Stats gives the summary).
type DurationHist struct {
	n        uint64
	sum      float64
	min, max time.Duration
	buckets  []uint64
}

const (
	histBuckets = 1600
	histRatio   = 1.02
)

var lnHistRatio = math.Log(histRatio)

// Add adds one duration.
func (h *DurationHist) Add(d time.Duration) {
	if h.buckets == nil {
		h.buckets = make([]uint64, histBuckets)
	}
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if h.n == 0 || d > h.max {
		h.max = d
	}
	h.n++
	h.sum += float64(d)
	h.buckets[bucketOf(d)]++
}

func bucketOf(d time.Duration) int {
	if d <= 1 {
		return 0
	}
	return min(1+int(math.Log(float64(d))/lnHistRatio), histBuckets-1)
}

// Stats summarises the durations added so far.
func (h *DurationHist) Stats() DurationStats {
	if h.n == 0 {
		return DurationStats{}
	}
	return DurationStats{Count: h.n, Min: h.min, Max: h.max, Mean: time.Duration(h.sum / float64(h.n)),
		P50: h.quantile(0.50), P90: h.quantile(0.90), P99: h.quantile(0.99)}
}

// quantile returns the geometric middle of the bucket holding the q-quantile, clamped to [min, max].
func (h *DurationHist) quantile(q float64) time.Duration {
	rank := uint64(math.Ceil(q * float64(h.n)))
	var seen uint64
	for i, c := range h.buckets {
		seen += c
		if seen < rank || c == 0 {
			continue
		}
		v := time.Duration(0)
		if i > 0 {
			v = time.Duration(math.Exp((float64(i-1) + 0.5) * lnHistRatio))
		}
		return min(max(v, h.min), h.max)
	}
	return h.max
}
