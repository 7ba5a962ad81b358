package results

import "fmt"

// Status is the outcome of a claim.
type Status string

const (
	// StatusHolds: the evidence supports the claim (at the stated false-alarm rate for a test).
	StatusHolds Status = "holds"
	// StatusFails: the evidence contradicts it (an observed failure, or a significant reverse test).
	StatusFails Status = "fails"
	// StatusInconclusive: not enough evidence either way; the verdict says how much more running would decide.
	StatusInconclusive Status = "inconclusive"
	// StatusVoid: the claim was not evaluated because what it is about did not happen as asked (a storm without
	// completed reloads, a failed reload command, a cell that did not run...); the verdict says why.
	StatusVoid Status = "void"
	// StatusContinue is only in a Sequential's decisions: undecided, keep running.
	StatusContinue Status = "continue"
)

// Verdict is the outcome of checking one claim.
type Verdict struct {
	Cell   string `json:"cell"`
	Claim  string `json:"claim"`
	Status Status `json:"status"`
	// Pass is Status == StatusHolds.
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
	// PValue is the one-sided p-value that the claim holds, ReverseP that its opposite does (better_than and
	// fewer_resets_than; omitted for other claims).
	PValue   float64 `json:"p_value,omitempty"`
	ReverseP float64 `json:"reverse_p_value,omitempty"`
	// Threshold and ReverseThreshold are the Holm-adjusted thresholds of the two p-values, Family the number of
	// p-value claims the correction runs over.
	Threshold        float64 `json:"holm_threshold,omitempty"`
	ReverseThreshold float64 `json:"reverse_holm_threshold,omitempty"`
	Family           int     `json:"family_size,omitempty"`
	// MoreWindows estimates the extra windows (reloads) per cell that would decide an inconclusive comparison
	// at the observed rates (0 when it cannot be estimated).
	MoreWindows int `json:"more_windows_per_cell,omitempty"`
	// MoreData says more running may change the verdict: inconclusive, or void for too few reloads so far.
	MoreData bool `json:"more_data_may_decide,omitempty"`
	// FalseAlarm states how often the claim could hold (or fail) when it is not true.
	FalseAlarm string `json:"false_alarm"`
	// AcceptInconclusive: the scenario accepts this claim ending inconclusive (Expectation.AcceptInconclusive).
	AcceptInconclusive bool `json:"accept_inconclusive,omitempty"`
}

// Unmet returns the verdicts a run must report as not met, and whether any of them is a fails: every fails
// and void verdict, and every inconclusive one unless accepted (acceptInconclusive, the caller's flag, or the
// claim's own AcceptInconclusive). The CLI exits 1 when one fails, 3 when the rest are undecided; a scenario
// test fails on any.
func Unmet(vs []Verdict, acceptInconclusive bool) (unmet []Verdict, failed bool) {
	for _, v := range vs {
		switch {
		case v.Status == StatusHolds:
		case v.Status == StatusInconclusive && (acceptInconclusive || v.AcceptInconclusive):
		default:
			unmet = append(unmet, v)
			failed = failed || v.Status == StatusFails
		}
	}
	return unmet, failed
}

func (v *Verdict) set(s Status) {
	v.Status, v.Pass = s, s == StatusHolds
	v.MoreData = v.MoreData || s == StatusInconclusive
}

// claim is one claim field of an expectation, on its way to a verdict.
type claim struct {
	e     Expectation
	a, b  *CellStats // b: the cell compared with, for a test
	other string     // b's name
	m     measure
	cmp   *Comparison // for a test that is not void: the comparison on all the data
	v     Verdict
}

// Check evaluates every claim of every expectation (one verdict per claim field set) against the cells, with
// a fixed-size design: better_than and fewer_resets_than are tested once, with Holm's correction across them.
// A claim about a cell that is missing, or whose reload storm did not happen as asked, is void; an unknown
// value or an expectation without a claim fails.
func Check(exps []Expectation, cells map[string]*CellStats) []Verdict {
	claims, tests := evaluate(exps, cells)
	decideFixed(tests)
	return verdicts(claims)
}

// evaluate turns the expectations into claims, decides those that are not tests, and returns the tests left.
func evaluate(exps []Expectation, cells map[string]*CellStats) (claims, tests []*claim) {
	for _, e := range exps {
		if e.Alpha <= 0 || e.Alpha >= 1 {
			e.Alpha = DefaultAlpha
		}
		a := cells[e.Cell]
		n := len(claims)
		if e.Failures != "" {
			claims = append(claims, &claim{e: e, a: a})
			claims[len(claims)-1].failures()
		}
		if e.Resets != "" {
			claims = append(claims, &claim{e: e, a: a})
			claims[len(claims)-1].resets()
		}
		if e.BetterThan != "" {
			c := &claim{e: e, a: a, b: cells[e.BetterThan], other: e.BetterThan, m: badWindows}
			claims = append(claims, c)
			if c.test() {
				tests = append(tests, c)
			}
		}
		if e.FewerResetsThan != "" {
			c := &claim{e: e, a: a, b: cells[e.FewerResetsThan], other: e.FewerResetsThan, m: resetWindows}
			claims = append(claims, c)
			if c.test() {
				tests = append(tests, c)
			}
		}
		if e.ConnectP99AtLeast != 0 {
			claims = append(claims, &claim{e: e, a: a})
			claims[len(claims)-1].connectP99()
		}
		if len(claims) == n {
			c := &claim{e: e, v: Verdict{Claim: "(no claim)", Detail: "the expectation sets no claim",
				FalseAlarm: "not applicable"}}
			c.v.set(StatusFails)
			claims = append(claims, c)
		}
	}
	for _, c := range claims {
		c.v.Cell, c.v.AcceptInconclusive = c.e.Cell, c.e.AcceptInconclusive
	}
	return claims, tests
}

func verdicts(claims []*claim) []Verdict {
	out := make([]Verdict, len(claims))
	for i, c := range claims {
		out[i] = c.v
	}
	return out
}

// void marks the claim void when a cell is missing or its storm did not happen as asked, and says so.
func (c *claim) void(cells ...*CellStats) bool {
	names := []string{c.e.Cell, c.other}
	for i, st := range cells {
		if st == nil {
			c.v.Detail = fmt.Sprintf("cell %q is not in the results: the claim cannot be evaluated", names[i])
			c.v.set(StatusVoid)
			return true
		}
	}
	for _, st := range cells {
		if why, curable := stormVoid(st, c.e.MinReloads); why != "" {
			c.v.Detail, c.v.MoreData = why, curable
			c.v.set(StatusVoid)
			return true
		}
	}
	if len(cells) == 2 && hadStorm(cells[0]) != hadStorm(cells[1]) {
		with, without := cells[0].Cell, cells[1].Cell
		if !hadStorm(cells[0]) {
			with, without = without, with
		}
		c.v.Detail = fmt.Sprintf("%s had a reload storm and %s did not: a cell without a storm cannot be "+
			"compared as a reload mitigation (a baseline without reloads would win by not reloading)", with,
			without)
		c.v.set(StatusVoid)
		return true
	}
	return false
}

// hadStorm says whether a reload storm was asked for or ran in the cell.
func hadStorm(st *CellStats) bool { return st.Storm || st.Reloads > 0 }

// stormVoid says why a claim about the cell must be void because its storm did not happen as asked ("" when it
// did, or when no storm was asked and minReloads is 0), and whether more rounds may cure it.
func stormVoid(st *CellStats, minReloads int) (why string, curable bool) {
	if !hadStorm(st) && minReloads <= 0 {
		return "", false
	}
	done := st.Reloads - st.ReloadsFailed
	switch {
	case st.ReloadsFailed > 0:
		return fmt.Sprintf("%s: %d of %d reload commands failed: the fault did not happen as asked, so the "+
			"claim is not evaluated", st.Cell, st.ReloadsFailed, st.Reloads), false
	case done == 0:
		return fmt.Sprintf("%s has a reload storm but completed no reload: the fault did not happen, so the "+
			"claim is not evaluated", st.Cell), true
	case done < minReloads:
		return fmt.Sprintf("%s completed %d reloads, fewer than min_reloads %d: the claim is not evaluated",
			st.Cell, done, minReloads), true
	}
	return "", false
}

func (c *claim) failures() {
	const alarm = "an observed count, not a test: no false alarm from sampling (a failure was recorded or not); " +
		"see docs for what the count can miss"
	e, a := c.e, c.a
	v := &c.v
	v.FalseAlarm = alarm
	switch e.Failures {
	case "some":
		v.Claim = e.Cell + " reproduces the pathology (at least one failed attempt)"
	case "none":
		v.Claim = e.Cell + " has no failed attempts"
		v.FalseAlarm += "; zero failures bounds the rate (upper bound above) but does not prove it is zero"
	default:
		v.Claim = fmt.Sprintf("failures: %q", e.Failures)
		v.Detail = `unknown value; want "some" or "none"`
		v.set(StatusFails)
		return
	}
	if c.void(a) {
		return
	}
	v.Detail = describeCell(a)
	switch {
	case e.Failures == "none" && a.Failures > 0:
		v.set(StatusFails) // an observed failure is certain
	case e.Failures == "none":
		v.set(StatusHolds)
	case a.Failures > 0:
		v.set(StatusHolds)
	default:
		v.Detail = fmt.Sprintf("no failure in %s attempts and %s %s; the bad-window fraction is below %s at "+
			"95%% (Clopper-Pearson): the pathology may be rarer than this run could show", commas(a.Attempts),
			commas(a.Windows), windowsUnit(a), fmtPct(ClopperPearson(0, a.Windows, 0.95).Hi))
		v.set(StatusInconclusive)
	}
}

// resets decides a resets: none|some claim: an observed count of attempts refused or reset, like failures.
func (c *claim) resets() {
	e, a := c.e, c.a
	v := &c.v
	v.FalseAlarm = "an observed count, not a test: no false alarm from sampling (a reset or refusal was " +
		"recorded or not); timeouts are not counted"
	switch e.Resets {
	case "some":
		v.Claim = e.Cell + " has resets or refusals"
	case "none":
		v.Claim = e.Cell + " has no resets or refusals"
	default:
		v.Claim = fmt.Sprintf("resets: %q", e.Resets)
		v.Detail = `unknown value; want "some" or "none"`
		v.set(StatusFails)
		return
	}
	if c.void(a) {
		return
	}
	v.Detail = fmt.Sprintf("%s resets or refusals in %s attempts (%s failures in all)", commas(a.Resets),
		commas(a.Attempts), commas(a.Failures))
	switch {
	case (e.Resets == "none") == (a.Resets == 0):
		v.set(StatusHolds)
	case e.Resets == "none":
		v.set(StatusFails) // an observed reset is certain
	default:
		v.Detail += "; the pathology may be rarer than this run could show"
		v.set(StatusInconclusive)
	}
}

func (c *claim) connectP99() {
	e, a := c.e, c.a
	v := &c.v
	v.Claim = fmt.Sprintf("%s's p99 connect time is at least %s", e.Cell, e.ConnectP99AtLeast)
	v.FalseAlarm = "an observed quantile (histogram estimate within 0.4% of the nearest-rank value) compared " +
		"with a threshold, not a test: no false-alarm rate from sampling is computed; see docs"
	if c.void(a) {
		return
	}
	v.Detail = fmt.Sprintf("p99 connect %s over %s successful attempts (p50 %s, max %s)", fmtDur(a.Connect.P99),
		commas(a.Connect.N), fmtDur(a.Connect.P50), fmtDur(a.Connect.Max))
	if a.Connect.N > 0 && a.Connect.P99 >= e.ConnectP99AtLeast {
		v.set(StatusHolds)
	} else {
		v.set(StatusFails)
	}
}

// test prepares a better_than or fewer_resets_than claim; it reports whether the claim is to be tested (it is
// not void).
func (c *claim) test() bool {
	e, other := c.e, c.other
	if c.m.name == badWindows.name {
		c.v.Claim = fmt.Sprintf("%s has significantly fewer %s than %s (alpha %g)", e.Cell, badUnit(c.a), other,
			e.Alpha)
	} else {
		c.v.Claim = fmt.Sprintf("%s has significantly fewer windows with resets than %s (alpha %g)", e.Cell,
			other, e.Alpha)
	}
	c.v.FalseAlarm = "not applicable: the claim was not tested"
	if c.void(c.a, c.b) {
		return false
	}
	cmp := compareBy(c.a, c.b, c.m)
	c.cmp = &cmp
	return true
}

// describe is the counts of a test claim's two cells.
func (c *claim) describe() string {
	a, b := c.a, c.b
	if c.m.name == badWindows.name {
		return fmt.Sprintf("%s; vs %s %d/%d %s", describeCell(a), b.Cell, b.BadWindows, b.Windows, badUnit(b))
	}
	return fmt.Sprintf("%s resets in %s attempts, %d/%d windows with resets; vs %s %s resets, %d/%d windows",
		commas(a.Resets), commas(a.Attempts), a.ResetWindows, a.Windows, b.Cell, commas(b.Resets),
		b.ResetWindows, b.Windows)
}

// decideFixed decides the tests of a fixed-size run: Holm's step-down over the claims' p-values (holds), and
// separately over their reverse p-values (fails), each claim at its own alpha.
func decideFixed(tests []*claim) {
	ps, rps, alphas := make([]float64, len(tests)), make([]float64, len(tests)), make([]float64, len(tests))
	for i, c := range tests {
		ps[i], rps[i], alphas[i] = c.cmp.PValue, c.cmp.ReverseP, c.e.Alpha
	}
	fwd, rev := holm(ps, alphas), holm(rps, alphas)
	m := len(tests)
	for i, c := range tests {
		v := &c.v
		v.PValue, v.ReverseP, v.Threshold, v.ReverseThreshold, v.Family = c.cmp.PValue, c.cmp.ReverseP,
			fwd[i].Threshold, rev[i].Threshold, m
		v.FalseAlarm = c.falseAlarm(m, "")
		stat := fmt.Sprintf("%s over %s: p=%s", c.testName(), plural(c.cmp.Rounds(), "round"), fmtP(v.PValue))
		holmFwd := fmt.Sprintf("its Holm threshold (rank %d of %s)", fwd[i].Rank, plural(m, "p-value claim"))
		holmRev := fmt.Sprintf("its Holm threshold among the reverse tests (rank %d of %d)", rev[i].Rank, m)
		switch {
		case fwd[i].Reject:
			v.set(StatusHolds)
			v.Detail = fmt.Sprintf("%s; %s < %s, %s", c.describe(), stat, fmtP(v.Threshold), holmFwd)
		case rev[i].Reject:
			v.set(StatusFails)
			v.Detail = fmt.Sprintf("%s; %s, and %s is significantly worse: reverse p=%s < %s, %s", c.describe(),
				stat, c.e.Cell, fmtP(v.ReverseP), fmtP(v.ReverseThreshold), holmRev)
		default:
			v.set(StatusInconclusive)
			var more string
			v.MoreWindows, more = needed(c.cmp, c.e.Alpha, m, windowsUnit(c.a))
			v.Detail = fmt.Sprintf("%s; %s %s %s, %s%s, and reverse p=%s %s %s%s: not enough evidence either "+
				"way; %s", c.describe(), stat, ge(fwd[i]), fmtP(v.Threshold), holmFwd, stopped(fwd[i]),
				fmtP(v.ReverseP), ge(rev[i]), fmtP(v.ReverseThreshold), stopped(rev[i]), more)
		}
		if c.m.name == badWindows.name {
			v.Detail += fmt.Sprintf(" (per connection, ignoring clustering and rounds: p=%s)",
				fmtP(c.cmp.PerConnectionP))
		}
	}
}

// testName names the test and its unit.
func (c *claim) testName() string {
	return "exact stratified test on " + c.m.name
}

func (c *claim) falseAlarm(m int, sequential string) string {
	s := fmt.Sprintf("if %s were in truth no better than %s, this claim would hold by chance at most %g%% of the "+
		"time, and if it were no worse it would fail by chance at most as often; family-wise over the "+
		"scenario's %s (Holm, alpha=%g)", c.e.Cell, c.other, 100*c.e.Alpha, plural(m, "p-value claim"), c.e.Alpha)
	if sequential != "" {
		s += "; " + sequential
	}
	return s + fmt.Sprintf("; exact conditional test on %s stratified by round: it allows the machine to drift "+
		"between rounds, and assumes windows within a round are independent", c.m.name)
}

func ge(h holmStep) string {
	if h.Reject || h.Stopped {
		return "<"
	}
	return "≥"
}

func stopped(h holmStep) string {
	if h.Stopped {
		return ", but Holm's step-down stopped at a smaller p-value that was not significant"
	}
	return ""
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return commas(n) + " " + what + "s"
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
	return "bad " + windowsUnit(a)
}

// windowsUnit names the windows of a cell: "reloads" for reload windows, "1 s windows" for fixed ones.
func windowsUnit(a *CellStats) string {
	switch {
	case a == nil || a.WindowKind == WindowReload:
		return "reloads"
	case a.WindowKind == WindowFixed:
		return widthText(a.WindowWidth) + " windows"
	}
	return "windows"
}
