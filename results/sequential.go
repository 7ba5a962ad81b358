package results

import (
	"fmt"
	"strconv"
)

// SequentialRule describes the stopping rule (maximum looks, twice).
const SequentialRule = "group-sequential: one look per round, at most %d looks; alpha spending alpha·t³ " +
	"(t = look/%d), look k tested at the increment alpha·(t_k³ - t_(k-1)³) on all the rounds so far; a union " +
	"bound over the looks keeps each claim's false-alarm rate at or below alpha for any dependence between " +
	"looks; Holm's step-down across the claims at each look, separately for holds and for fails"

// SequentialPlan is how a run that adds rounds until its claims are decided is to be judged (run.json): the
// greatest number of rounds (looks) it may run, fixed before the first round, since alpha is spent as a
// fraction of it.
type SequentialPlan struct {
	MaxLooks int `json:"max_looks"`
	// Budget is the time the run may take (a Go duration, "30m0s"); MaxLooks is what fits in it at the
	// planned round time.
	Budget string `json:"budget,omitempty"`
	// Stopped says why the runner stopped adding rounds: "decided", "last look", "budget" or "interrupted"
	// (written at the finish; empty while the run goes on).
	Stopped string `json:"stopped,omitempty"`
}

// SequentialReport is the state of a sequential run (Report.Sequential).
type SequentialReport struct {
	Rule     string `json:"rule"`
	MaxLooks int    `json:"max_looks"`
	Looks    int    `json:"looks"` // rounds run so far: one look each
	// Undecided counts the verdicts more rounds may change (inconclusive, or void for too few reloads so far).
	Undecided int `json:"undecided"`
	// Done: nothing is left that more rounds could decide, or the last look was reached; the runner stops.
	Done bool `json:"done"`
	// Budget, Stopped: the plan's (SequentialPlan); Elapsed is the run's time from start to finish.
	Budget  string `json:"budget,omitempty"`
	Stopped string `json:"stopped,omitempty"`
	Elapsed string `json:"elapsed,omitempty"`
}

// Sequential is a group-sequential decision rule for p-value claims: after each round (a look) every claim is
// tested on all the data so far, at a level that spends the claim's alpha as alpha·t³, t = look/maxLooks (an
// O'Brien-Fleming-like shape: little at the first looks, most at the last). Look k tests at the increment
// alpha·(t_k³ - t_(k-1)³); the increments sum to alpha, so by the union bound the chance of any false alarm
// over all looks is at most alpha whatever the dependence between the looks' p-values. A claim holds when its
// p-value, and fails when its reverse p-value, is below its Holm threshold at that look (Holm's step-down
// across the claims, at the look's increments); a decided claim stays decided. Pass the same claims, in the
// same order, at every look.
type Sequential struct {
	alpha    float64
	maxLooks int
	look     int
	decided  map[string]ClaimDecision
}

// Test is one p-value claim at one look.
type Test struct {
	Key      string  // identifies the claim from look to look
	P        float64 // one-sided p-value that the claim holds
	ReverseP float64 // one-sided p-value that its opposite holds
	Alpha    float64 // the claim's false-alarm rate; the Sequential's alpha when zero
}

// ClaimDecision is a claim's state after a look.
type ClaimDecision struct {
	Key string `json:"key"`
	// Status is holds or fails once decided (and ever after), continue before, inconclusive after the last look.
	Status Status `json:"status"`
	// Look is the look at which the claim was decided (0: not decided).
	Look int `json:"look"`
	// P and ReverseP are the p-values at the deciding look (or the latest one).
	P        float64 `json:"p_value"`
	ReverseP float64 `json:"reverse_p_value"`
	// Level is the alpha spent at that look, before Holm; Threshold and ReverseThreshold are Holm's.
	Level            float64 `json:"level"`
	Threshold        float64 `json:"threshold"`
	ReverseThreshold float64 `json:"reverse_threshold"`
	Rank             int     `json:"rank"`
	ReverseRank      int     `json:"reverse_rank"`
}

// Decision is the outcome of one look.
type Decision struct {
	Look     int             `json:"look"`
	MaxLooks int             `json:"max_looks"`
	Claims   []ClaimDecision `json:"claims"`
	// Done: every claim is decided, or this was the last look.
	Done bool `json:"done"`
}

// NewSequential returns the rule for claims at false-alarm rate alpha (DefaultAlpha when not in (0,1)) over at
// most maxLooks looks (at least 1).
func NewSequential(alpha float64, maxLooks int) *Sequential {
	if alpha <= 0 || alpha >= 1 {
		alpha = DefaultAlpha
	}
	return &Sequential{alpha: alpha, maxLooks: max(maxLooks, 1), decided: map[string]ClaimDecision{}}
}

// Spent is the false-alarm rate spent by look k of maxLooks for a claim at level alpha: alpha·(k/maxLooks)³.
func Spent(alpha float64, look, maxLooks int) float64 {
	t := float64(min(max(look, 0), maxLooks)) / float64(maxLooks)
	return alpha * t * t * t
}

// Look records one more look at the claims' p-values and returns every claim's state.
func (s *Sequential) Look(tests ...Test) Decision {
	s.look++
	k := s.look
	ps, rps, levels := make([]float64, len(tests)), make([]float64, len(tests)), make([]float64, len(tests))
	for i, t := range tests {
		a := t.Alpha
		if a <= 0 || a >= 1 {
			a = s.alpha
		}
		ps[i], rps[i] = t.P, t.ReverseP
		levels[i] = Spent(a, k, s.maxLooks) - Spent(a, k-1, s.maxLooks)
	}
	fwd, rev := holm(ps, levels), holm(rps, levels)
	d := Decision{Look: k, MaxLooks: s.maxLooks, Done: true}
	for i, t := range tests {
		cd, ok := s.decided[t.Key]
		if !ok {
			cd = ClaimDecision{Key: t.Key, Status: StatusContinue, P: t.P, ReverseP: t.ReverseP, Level: levels[i],
				Threshold: fwd[i].Threshold, ReverseThreshold: rev[i].Threshold, Rank: fwd[i].Rank,
				ReverseRank: rev[i].Rank}
			switch {
			case fwd[i].Reject:
				cd.Status, cd.Look = StatusHolds, k
			case rev[i].Reject:
				cd.Status, cd.Look = StatusFails, k
			case k >= s.maxLooks:
				cd.Status = StatusInconclusive
			}
			if cd.Look > 0 {
				s.decided[t.Key] = cd
			}
		}
		d.Done = d.Done && (cd.Look > 0 || k >= s.maxLooks)
		d.Claims = append(d.Claims, cd)
	}
	return d
}

// Test is the comparison as a claim for a Sequential look, keyed by its cells and measure.
func (c *Comparison) Test(alpha float64) Test {
	return Test{Key: c.Measure + ":" + c.A + "<" + c.B, P: c.PValue, ReverseP: c.ReverseP, Alpha: alpha}
}

// CheckSequential is Check for a run that added rounds until decided: the p-value claims are judged by
// replaying the looks of plan, one per round (look k compares the rounds with Rep < k), with a Sequential; the
// other claims as Check judges them, on all the data.
func CheckSequential(exps []Expectation, cells map[string]*CellStats, plan SequentialPlan) []Verdict {
	claims, tests := evaluate(exps, cells)
	decideSequential(tests, max(plan.MaxLooks, 1))
	return verdicts(claims)
}

// looksRun is the number of rounds the cells ran: the greatest Rep plus one.
func looksRun(cells ...*CellStats) int {
	n := 0
	for _, st := range cells {
		if st == nil {
			continue
		}
		for _, r := range st.Rounds {
			n = max(n, r.Rep+1)
		}
	}
	return n
}

// firstRounds is the cell's statistics with only the rounds Rep < k (as far as comparisons read them).
func firstRounds(st *CellStats, k int) *CellStats {
	if len(st.Rounds) == 0 {
		return st
	}
	c := *st
	c.Rounds = nil
	for _, r := range st.Rounds {
		if r.Rep < k {
			c.Rounds = append(c.Rounds, r)
		}
	}
	return &c
}

func decideSequential(tests []*claim, maxLooks int) {
	if len(tests) == 0 {
		return
	}
	var all []*CellStats
	for _, c := range tests {
		all = append(all, c.a, c.b)
	}
	looks := max(1, min(looksRun(all...), maxLooks))
	seq := NewSequential(DefaultAlpha, maxLooks)
	var d Decision
	for k := 1; k <= looks; k++ {
		ts := make([]Test, len(tests))
		for i, c := range tests {
			cmp := compareBy(firstRounds(c.a, k), firstRounds(c.b, k), c.m)
			ts[i] = Test{Key: strconv.Itoa(i), P: cmp.PValue, ReverseP: cmp.ReverseP, Alpha: c.e.Alpha}
		}
		d = seq.Look(ts...)
	}
	m := len(tests)
	for i, c := range tests {
		cd, v := d.Claims[i], &c.v
		v.PValue, v.ReverseP, v.Threshold, v.ReverseThreshold, v.Family = cd.P, cd.ReverseP, cd.Threshold,
			cd.ReverseThreshold, m
		v.FalseAlarm = c.falseAlarm(m, fmt.Sprintf("over all %d looks of the sequential design (alpha spent as "+
			"alpha·t³, a union bound over the looks: valid for any dependence between them)", maxLooks))
		at := func(look int) string {
			return fmt.Sprintf("sequential design, look %d of %d (alpha spent at this look %s before Holm, rank %d "+
				"of %d)", look, maxLooks, fmtP(cd.Level), cd.Rank, m)
		}
		switch cd.Status {
		case StatusHolds:
			v.set(StatusHolds)
			v.Detail = fmt.Sprintf("%s; %s: %s over %s: p=%s < %s, its Holm threshold", c.describe(), at(cd.Look),
				c.testName(), plural(cd.Look, "round"), fmtP(cd.P), fmtP(cd.Threshold))
		case StatusFails:
			v.set(StatusFails)
			v.Detail = fmt.Sprintf("%s; %s: %s over %s: %s is significantly worse: reverse p=%s < %s, its Holm "+
				"threshold among the reverse tests", c.describe(), at(cd.Look), c.testName(),
				plural(cd.Look, "round"), c.e.Cell, fmtP(cd.ReverseP), fmtP(cd.ReverseThreshold))
		default:
			v.set(StatusInconclusive)
			var more string
			v.MoreWindows, more = needed(c.cmp, c.e.Alpha, m, windowsUnit(c.a))
			state := fmt.Sprintf("no decision after %d of %d looks", looks, maxLooks)
			if looks >= maxLooks {
				state += " (the last)"
			}
			v.Detail = fmt.Sprintf("%s; %s: %s; at the latest look p=%s (Holm threshold %s) and reverse p=%s "+
				"(threshold %s): not enough "+
				"evidence either way; for a fixed-size run, %s", c.describe(), at(looks), state,
				fmtP(cd.P), fmtP(cd.Threshold), fmtP(cd.ReverseP), fmtP(cd.ReverseThreshold), more)
		}
	}
}
