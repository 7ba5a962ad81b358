package runner

import (
	"fmt"
	"time"

	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/results"
)

// sequentialCells plans an UntilDecided run: as many interleaved rounds as the budget holds at the planned
// round time (every row's block plus cellOverhead), at most the spec's round limit. The number of rounds is the
// sequential design's number of looks, so it is fixed here, before the first round.
func sequentialCells(s *spec.Scenario, opts Options, fixed []spec.Cell) ([]spec.Cell, *results.SequentialPlan, error) {
	if len(fixed) == 0 {
		return nil, nil, fmt.Errorf("%s: --until-decided: the scenario has no cells", s.File)
	}
	if fixed[len(fixed)-1].Rep > 0 && fixed[0].Scenario.Rounds <= 1 {
		return nil, nil, fmt.Errorf("%s: --until-decided adds rounds of every cell: it cannot be combined with "+
			"repetitions (use rounds: N to set the block, the duration / N each cell runs per round)", s.File)
	}
	budget := opts.Budget
	if budget <= 0 {
		budget = DefaultBudget
	}
	rows := map[string]bool{}
	for _, c := range fixed {
		rows[c.Name] = true
	}
	if len(opts.Cells) > 0 {
		rows = map[string]bool{}
		for _, n := range opts.Cells {
			rows[n] = true
		}
	}
	block := fixed[0].Scenario.Workload.Duration
	round := time.Duration(len(rows)) * (block + cellOverhead)
	looks := min(int(budget/round), spec.MaxRounds)
	if looks < 1 {
		return nil, nil, fmt.Errorf("%s: --until-decided: a budget of %s does not hold one round (%d cells of "+
			"a %s block, about %s with setup): give a budget of at least %s", s.File, budget, len(rows), block,
			round.Round(time.Second), round.Round(time.Minute)+time.Minute)
	}
	plan := &results.SequentialPlan{MaxLooks: looks, Budget: budget.String()}
	return spec.ExpandRounds(s, opts.Long, looks), plan, nil
}

// roundClock times the rounds of an UntilDecided run.
type roundClock struct {
	budget         time.Duration
	start, roundAt time.Time
	round          int
	longest        time.Duration // the longest round so far
}

func newRoundClock(budget time.Duration) *roundClock {
	if budget <= 0 {
		budget = DefaultBudget
	}
	now := time.Now()
	return &roundClock{budget: budget, start: now, roundAt: now, round: -1}
}

// boundary says whether a cell of round rep begins a new round after at least one finished round, and times
// the round that ended.
func (c *roundClock) boundary(rep int) bool {
	if rep == c.round {
		return false
	}
	first := c.round < 0
	now := time.Now()
	if !first {
		c.longest = max(c.longest, now.Sub(c.roundAt))
	}
	c.round, c.roundAt = rep, now
	return !first
}

// sequentialStop looks at the claims after a round: "decided" when the report says nothing is left that more
// rounds could decide, "budget" when another round as long as the longest so far would overrun the budget,
// "" to go on.
func (r *Runner) sequentialStop(c *roundClock) string {
	rep, err := results.Build(r.Dir)
	if err == nil && rep.Sequential != nil && rep.Sequential.Undecided == 0 {
		return "decided"
	}
	if time.Since(c.start)+c.longest > c.budget {
		return "budget"
	}
	return ""
}

// setStopped records in run.json why the rounds stopped (the first reason given wins).
func (r *Runner) setStopped(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.meta.Sequential != nil && r.meta.Sequential.Stopped == "" {
		r.meta.Sequential.Stopped = why
	}
}
