package results

import (
	"fmt"
	"strings"
	"time"
)

// DefaultAlpha is the significance level of a claim that does not set one.
const DefaultAlpha = 0.01

// MethodStratified is the format of Comparison.Method (measure, "K strata", measure).
const MethodStratified = "exact stratified (conditional) test on %s per round, %s: within each round A's " +
	"%s given the round's total are hypergeometric, the p-value is the tail of the convolution of the rounds' " +
	"hypergeometrics (one-sided, A fewer than B; the reverse p-value tests A more than B); rounds may differ, " +
	"windows within a round are assumed independent; with one stratum this is the one-sided Fisher exact test. " +
	"The per-connection p-value (pooled Fisher on attempts) ignores clustering and rounds and is for " +
	"information only"

// Comparison tests whether cell A has fewer bad windows (or windows with resets) than cell B, round by round.
type Comparison struct {
	A string `json:"a"`
	B string `json:"b"`
	// Measure is what is counted per window: "bad windows" or "reset windows".
	Measure string `json:"measure"`
	// PValue is the one-sided p-value that A has fewer (StratifiedLess); ReverseP that A has more
	// (StratifiedGreater).
	PValue   float64 `json:"p_value"`
	ReverseP float64 `json:"reverse_p_value"`
	// ABad of AWindows and BBad of BWindows are summed over the strata compared (rounds both cells ran).
	ABad     int `json:"a_bad_windows"`
	AWindows int `json:"a_windows"`
	BBad     int `json:"b_bad_windows"`
	BWindows int `json:"b_windows"`
	// Strata are the per-round counts the test used; Unmatched the rounds only one cell ran (left out).
	Strata    []Stratum `json:"strata,omitempty"`
	Unmatched []int     `json:"unmatched_rounds,omitempty"`
	// PerConnectionP is the one-sided Fisher exact p-value on failed attempts; it ignores clustering.
	PerConnectionP float64 `json:"per_connection_p_value"`
	Method         string  `json:"method"`
}

// measure is what a comparison counts per window.
type measure struct {
	name  string
	round func(*RoundCounts) int
	cell  func(*CellStats) int
}

var (
	badWindows = measure{"bad windows", func(r *RoundCounts) int { return r.BadWindows },
		func(s *CellStats) int { return s.BadWindows }}
	resetWindows = measure{"reset windows", func(r *RoundCounts) int { return r.ResetWindows },
		func(s *CellStats) int { return s.ResetWindows }}
)

// Compare tests whether a has fewer bad windows than b, stratified by round. Missing statistics give p = 1.
func Compare(a, b *CellStats) Comparison { return compareBy(a, b, badWindows) }

// CompareResets tests whether a has fewer windows with resets than b, stratified by round.
func CompareResets(a, b *CellStats) Comparison { return compareBy(a, b, resetWindows) }

func compareBy(a, b *CellStats, m measure) Comparison {
	c := Comparison{Measure: m.name, PValue: 1, ReverseP: 1, PerConnectionP: 1}
	if a == nil || b == nil {
		c.Method = "missing cell statistics"
		return c
	}
	c.A, c.B = a.Cell, b.Cell
	var note string
	if len(a.Rounds) > 0 && len(b.Rounds) > 0 {
		c.Strata, c.Unmatched = matchRounds(a.Rounds, b.Rounds, m.round)
		if len(c.Unmatched) > 0 {
			note = fmt.Sprintf("; rounds %s ran in one cell only and are left out", joinInts(c.Unmatched))
		}
	} else {
		c.Strata = []Stratum{{Rep: -1, ABad: m.cell(a), AWindows: a.Windows, BBad: m.cell(b), BWindows: b.Windows}}
		note = "; no per-round counts: one stratum, the whole cells"
	}
	for _, s := range c.Strata {
		c.ABad, c.AWindows, c.BBad, c.BWindows = c.ABad+s.ABad, c.AWindows+s.AWindows, c.BBad+s.BBad,
			c.BWindows+s.BWindows
	}
	c.PValue, c.ReverseP = StratifiedTails(c.Strata)
	c.PerConnectionP = FisherLess(a.Failures, a.Attempts, b.Failures, b.Attempts)
	strata := fmt.Sprintf("%d strata", len(c.Strata))
	if len(c.Strata) == 1 {
		strata = "1 stratum"
	}
	c.Method = fmt.Sprintf(MethodStratified, m.name, strata, m.name) + note
	if a.WindowKind != b.WindowKind {
		c.Method += fmt.Sprintf("; caution: windows differ in kind (%s vs %s)", a.WindowKind, b.WindowKind)
	}
	return c
}

// Rounds is the number of strata (rounds) compared.
func (c *Comparison) Rounds() int { return len(c.Strata) }

// CompareAll compares every cell but the baseline with the baseline.
func CompareAll(cells []*CellStats, baseline string) []Comparison {
	var base *CellStats
	for _, c := range cells {
		if c != nil && c.Cell == baseline {
			base = c
		}
	}
	if base == nil {
		return nil
	}
	var out []Comparison
	for _, c := range cells {
		if c != nil && c != base {
			out = append(out, Compare(c, base))
		}
	}
	return out
}

// Expectation is one claim about the results. Its fields match spec.Expectation, which converts to it (a
// conversion ignores the tags, not the fields' names, types and order); the JSON tags are those of run.json.
type Expectation struct {
	Cell              string        `yaml:"cell" json:"cell"`
	Failures          string        `yaml:"failures" json:"failures,omitempty"` // "some" or "none"
	Resets            string        `yaml:"resets" json:"resets,omitempty"`     // "some" or "none"
	BetterThan        string        `yaml:"better_than" json:"better_than,omitempty"`
	FewerResetsThan   string        `yaml:"fewer_resets_than" json:"fewer_resets_than,omitempty"`
	ConnectP99AtLeast time.Duration `yaml:"connect_p99_at_least" json:"connect_p99_at_least_ns,omitempty"`
	Alpha             float64       `yaml:"alpha" json:"alpha,omitempty"` // default 0.01
	// MinReloads is the number of completed reloads each storm cell of the claim must have for the claim to be
	// evaluated (fewer: the claim is void). Zero asks for at least one.
	MinReloads int `yaml:"min_reloads" json:"min_reloads,omitempty"`
	// AcceptInconclusive: an inconclusive verdict on this claim is accepted (Unmet leaves it out).
	AcceptInconclusive bool `yaml:"accept_inconclusive" json:"accept_inconclusive,omitempty"`
}

func joinInts(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, ", ")
}
