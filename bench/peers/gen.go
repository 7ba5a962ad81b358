// Package peers compares the lab's parts with the tools users would pick instead, in one run on one machine:
// `make bench-peers` (cmd/bench-peers) measures, this package holds what is pure: the figures of one step,
// the parsers of the peers' output and the table of same-run ratios (docs/performance.md).
package peers

import (
	"time"
)

// HoldTolerance is how far a generator may fall short and still hold a rate: it holds a step when it issued
// at least 99% of the target rate and at most 1% of its attempts failed.
const HoldTolerance = 0.01

// GenStep is one load generator at one target rate of the ladder.
type GenStep struct {
	Tool     string  `json:"tool"`
	Target   float64 `json:"target"`   // the rate asked for, connections/s
	Attempts int64   `json:"attempts"` // connections issued
	Achieved float64 `json:"achieved"` // connections issued per second, as the tool measures its own rate
	Failed   int64   `json:"failed"`   // attempts without a 2xx response
	// P99 is the latency p99 (connect to the end of the response), LagP99 how late attempts started (the
	// lab's generator only); -1 when the tool does not report it.
	P99    time.Duration `json:"p99_ns"`
	LagP99 time.Duration `json:"lag_p99_ns"`
	CPU    time.Duration `json:"cpu_ns"`     // user+system time of the generator's process
	MaxRSS int64         `json:"max_rss_kb"` // its peak resident set
	// Hung says the tool did not finish the step in time and was stopped: the step failed as a whole.
	Hung bool `json:"hung,omitempty"`
}

// Ratio is achieved/target.
func (s GenStep) Ratio() float64 {
	if s.Target <= 0 {
		return 0
	}
	return s.Achieved / s.Target
}

// FailedShare is failed/attempts.
func (s GenStep) FailedShare() float64 {
	if s.Attempts <= 0 {
		return 1
	}
	return float64(s.Failed) / float64(s.Attempts)
}

// Held says whether the step held its rate within HoldTolerance.
func (s GenStep) Held() bool {
	return s.Attempts > 0 && s.Ratio() >= 1-HoldTolerance && s.FailedShare() <= HoldTolerance
}

// CPUPer1000 is the generator's CPU time per 1,000 connections issued (0 without attempts).
func (s GenStep) CPUPer1000() time.Duration {
	if s.Attempts <= 0 {
		return 0
	}
	return time.Duration(float64(s.CPU) * 1000 / float64(s.Attempts))
}

// HighestHeld is the highest target rate tool held with every lower step of its ladder held too (a rate
// held after one that was not is luck, not capacity); 0 when it held none.
func HighestHeld(steps []GenStep, tool string) float64 {
	var mine []GenStep
	for _, s := range steps {
		if s.Tool == tool {
			mine = append(mine, s)
		}
	}
	best := 0.0
	for _, s := range sortedByTarget(mine) {
		if !s.Held() {
			break
		}
		best = s.Target
	}
	return best
}

func sortedByTarget(steps []GenStep) []GenStep {
	out := append([]GenStep(nil), steps...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Target < out[j-1].Target; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
