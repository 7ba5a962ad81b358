package results

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultAlpha is the significance level of a claim that does not set one.
const DefaultAlpha = 0.01

const methodCompare = "one-sided Fisher exact test that A has a smaller fraction of windows with at least one " +
	"failure than B (unit: reload window, which respects clustering); the per-connection p-value treats " +
	"attempts as independent and is for information only"

// Comparison tests whether cell A fails less than cell B.
type Comparison struct {
	A string `json:"a"`
	B string `json:"b"`
	// PValue is the one-sided Fisher exact p-value on bad windows (A's BadWindows of Windows vs B's).
	PValue   float64 `json:"p_value"`
	ABad     int     `json:"a_bad_windows"`
	AWindows int     `json:"a_windows"`
	BBad     int     `json:"b_bad_windows"`
	BWindows int     `json:"b_windows"`
	// PerConnectionP is the one-sided Fisher exact p-value on failed attempts; it ignores clustering.
	PerConnectionP float64 `json:"per_connection_p_value"`
	Method         string  `json:"method"`
}

// Compare tests whether a has fewer bad windows than b. Missing statistics give p = 1.
func Compare(a, b *CellStats) Comparison {
	c := Comparison{PValue: 1, PerConnectionP: 1, Method: methodCompare}
	if a == nil || b == nil {
		c.Method = "missing cell statistics"
		return c
	}
	c.A, c.B = a.Cell, b.Cell
	c.ABad, c.AWindows, c.BBad, c.BWindows = a.BadWindows, a.Windows, b.BadWindows, b.Windows
	c.PValue = FisherLess(a.BadWindows, a.Windows, b.BadWindows, b.Windows)
	c.PerConnectionP = FisherLess(a.Failures, a.Attempts, b.Failures, b.Attempts)
	if a.WindowKind != b.WindowKind {
		c.Method += fmt.Sprintf("; caution: windows differ in kind (%s vs %s)", a.WindowKind, b.WindowKind)
	}
	return c
}

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
// conversion ignores the tags); the JSON tags are those of run.json.
type Expectation struct {
	Cell              string        `yaml:"cell" json:"cell"`
	Failures          string        `yaml:"failures" json:"failures,omitempty"` // "some" or "none"
	BetterThan        string        `yaml:"better_than" json:"better_than,omitempty"`
	FewerResetsThan   string        `yaml:"fewer_resets_than" json:"fewer_resets_than,omitempty"`
	ConnectP99AtLeast time.Duration `yaml:"connect_p99_at_least" json:"connect_p99_at_least_ns,omitempty"`
	Alpha             float64       `yaml:"alpha" json:"alpha,omitempty"` // default 0.01
}

// Verdict is the outcome of checking one claim.
type Verdict struct {
	Cell   string `json:"cell"`
	Claim  string `json:"claim"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
	// PValue is the test's p-value for better_than and fewer_resets_than claims (omitted for other claims).
	PValue float64 `json:"p_value,omitempty"`
	// FalseAlarm states how often the claim could pass when it is not true.
	FalseAlarm string `json:"false_alarm"`
}

// Check evaluates every claim of every expectation (one verdict per claim field set) against the cells. A
// missing cell, an unknown value or an expectation without a claim gives a failing verdict.
func Check(exps []Expectation, cells map[string]*CellStats) []Verdict {
	var out []Verdict
	for _, e := range exps {
		out = append(out, checkOne(e, cells)...)
	}
	return out
}

func checkOne(e Expectation, cells map[string]*CellStats) []Verdict {
	if e.Alpha <= 0 || e.Alpha >= 1 {
		e.Alpha = DefaultAlpha
	}
	a := cells[e.Cell]
	var out []Verdict
	if e.Failures != "" {
		out = append(out, withCell(e.Cell, a, func() Verdict { return checkFailures(e, a) }))
	}
	if e.BetterThan != "" {
		out = append(out, withCell(e.Cell, a, func() Verdict { return checkBetter(e, a, cells[e.BetterThan]) }))
	}
	if e.FewerResetsThan != "" {
		out = append(out, withCell(e.Cell, a, func() Verdict { return checkResets(e, a, cells[e.FewerResetsThan]) }))
	}
	if e.ConnectP99AtLeast != 0 {
		out = append(out, withCell(e.Cell, a, func() Verdict { return checkConnectP99(e, a) }))
	}
	if len(out) == 0 {
		out = append(out, Verdict{Cell: e.Cell, Claim: "(no claim)", Detail: "the expectation sets no claim",
			FalseAlarm: "not applicable"})
	}
	return out
}

// withCell returns a failing verdict when the cell is missing, or else the verdict made by fn.
func withCell(cell string, st *CellStats, fn func() Verdict) Verdict {
	v := fn()
	v.Cell = cell
	if st == nil {
		v.Pass, v.PValue = false, 0
		v.Detail = fmt.Sprintf("cell %q is not in the results", cell)
	}
	return v
}

func checkFailures(e Expectation, a *CellStats) Verdict {
	const alarm = "an observed count, not a test: no false alarm from sampling (a failure was recorded or not); " +
		"see docs for what the count can miss"
	v := Verdict{FalseAlarm: alarm}
	switch e.Failures {
	case "some":
		v.Claim = e.Cell + " reproduces the pathology (at least one failed attempt)"
		v.Pass = a != nil && a.Failures > 0
	case "none":
		v.Claim = e.Cell + " has no failed attempts"
		v.Pass = a != nil && a.Failures == 0
		v.FalseAlarm += "; zero failures bounds the rate (upper bound above) but does not prove it is zero"
	default:
		v.Claim = fmt.Sprintf("failures: %q", e.Failures)
		v.Detail = `unknown value; want "some" or "none"`
		return v
	}
	if a != nil {
		v.Detail = describeCell(a)
	}
	return v
}

func checkBetter(e Expectation, a, b *CellStats) Verdict {
	v := Verdict{Claim: fmt.Sprintf("%s has significantly fewer %s than %s (alpha %g)", e.Cell,
		badUnit(a), e.BetterThan, e.Alpha), FalseAlarm: falseAlarm(e.Cell, e.BetterThan, e.Alpha, "bad windows")}
	if a == nil {
		return v
	}
	if b == nil {
		v.Detail = fmt.Sprintf("cell %q (to compare with) is not in the results", e.BetterThan)
		return v
	}
	c := Compare(a, b)
	v.PValue, v.Pass = c.PValue, c.PValue < e.Alpha
	v.Detail = fmt.Sprintf("%s; vs %s %d/%d %s, Fisher one-sided p=%s %s %g (per connection, ignoring "+
		"clustering: p=%s)", describeCell(a), b.Cell, b.BadWindows, b.Windows, badUnit(b), fmtP(c.PValue),
		cmpSign(v.Pass), e.Alpha, fmtP(c.PerConnectionP))
	return v
}

func checkResets(e Expectation, a, b *CellStats) Verdict {
	v := Verdict{Claim: fmt.Sprintf("%s has significantly fewer windows with resets than %s (alpha %g)", e.Cell,
		e.FewerResetsThan, e.Alpha), FalseAlarm: falseAlarm(e.Cell, e.FewerResetsThan, e.Alpha, "reset windows")}
	if a == nil {
		return v
	}
	if b == nil {
		v.Detail = fmt.Sprintf("cell %q (to compare with) is not in the results", e.FewerResetsThan)
		return v
	}
	p := FisherLess(a.ResetWindows, a.Windows, b.ResetWindows, b.Windows)
	v.PValue, v.Pass = p, p < e.Alpha
	v.Detail = fmt.Sprintf("%s resets in %s attempts, %d/%d windows with resets; vs %s %s resets, %d/%d "+
		"windows, Fisher one-sided p=%s %s %g", commas(a.Resets), commas(a.Attempts), a.ResetWindows, a.Windows,
		b.Cell, commas(b.Resets), b.ResetWindows, b.Windows, fmtP(p), cmpSign(v.Pass), e.Alpha)
	return v
}

func checkConnectP99(e Expectation, a *CellStats) Verdict {
	v := Verdict{Claim: fmt.Sprintf("%s's p99 connect time is at least %s", e.Cell, e.ConnectP99AtLeast),
		FalseAlarm: "an observed quantile (histogram estimate within 0.4% of the nearest-rank value) compared " +
			"with a threshold, not a test: no false-alarm rate from sampling is computed; see docs"}
	if a == nil {
		return v
	}
	v.Pass = a.Connect.N > 0 && a.Connect.P99 >= e.ConnectP99AtLeast
	v.Detail = fmt.Sprintf("p99 connect %s over %s successful attempts (p50 %s, max %s)", fmtDur(a.Connect.P99),
		commas(a.Connect.N), fmtDur(a.Connect.P50), fmtDur(a.Connect.Max))
	return v
}

func falseAlarm(a, b string, alpha float64, unit string) string {
	return fmt.Sprintf("if %s were in truth no better than %s, this check would pass by chance at most %g%% of "+
		"the time (alpha=%g; one-sided Fisher exact test on %s, conservative, assuming windows are independent)",
		a, b, 100*alpha, alpha, unit)
}

// describeCell is the one-line count summary used in verdict details.
func describeCell(a *CellStats) string {
	s := fmt.Sprintf("%s failures in %s attempts, %d/%d %s", commas(a.Failures), commas(a.Attempts),
		a.BadWindows, a.Windows, badUnit(a))
	if a.Failures == 0 && a.Attempts > 0 {
		s += fmt.Sprintf(" (rate < %s, 95%% upper bound)", fmtPct(a.RateCI.Hi))
	}
	return s
}

// badUnit names the bad windows of a cell: "bad reloads" for reload windows.
func badUnit(a *CellStats) string {
	if a == nil || a.WindowKind == WindowReload {
		return "bad reloads"
	}
	if a.WindowKind == WindowFixed {
		return "bad " + widthText(a.WindowWidth) + " windows"
	}
	return "bad windows"
}

func cmpSign(pass bool) string {
	if pass {
		return "<"
	}
	return "≥"
}

// fmtP formats a p-value with two significant digits.
func fmtP(p float64) string {
	if p == 0 {
		return "<1e-300"
	}
	return strconv.FormatFloat(p, 'g', 2, 64)
}

// fmtPct formats a proportion as a percentage with three significant digits.
func fmtPct(p float64) string {
	if p == 0 {
		return "0%"
	}
	return strconv.FormatFloat(100*p, 'g', 3, 64) + "%"
}

// commas formats n with thousands separators (41,200).
func commas(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtDur formats a duration with about three significant digits (1.23ms, 3.01s, 850µs).
func fmtDur(d time.Duration) string {
	units := []struct {
		div  time.Duration
		name string
	}{{time.Second, "s"}, {time.Millisecond, "ms"}, {time.Microsecond, "µs"}}
	for _, u := range units {
		if d >= u.div || -d >= u.div {
			v := float64(d) / float64(u.div)
			prec := 2
			switch {
			case v >= 100 || v <= -100:
				prec = 0
			case v >= 10 || v <= -10:
				prec = 1
			}
			return strconv.FormatFloat(v, 'f', prec, 64) + u.name
		}
	}
	return strconv.Itoa(int(d)) + "ns"
}
