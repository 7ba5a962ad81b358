package results

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// RegressionSchema identifies the output of CompareBaseline.
const RegressionSchema = "faultlab.compare/v1"

// The outcomes of one cell and metric in a comparison with a baseline.
const (
	RegressBetter       = "better"
	RegressSame         = "same"
	RegressWorse        = "worse"
	RegressInconclusive = "inconclusive"
)

// DefaultMargin is the equivalence margin of a "same": the run's odds of a bad window are within a factor 2 of
// the baseline's (no doubling, no halving).
const DefaultMargin = 2.0

// RegressOptions sets a comparison's false-alarm rate and equivalence margin (zero values: the defaults).
type RegressOptions struct {
	Alpha  float64 // DefaultAlpha (0.01) when zero
	Margin float64 // DefaultMargin (2) when zero; must be > 1
}

func (o RegressOptions) withDefaults() RegressOptions {
	if o.Alpha <= 0 || o.Alpha >= 0.5 {
		o.Alpha = DefaultAlpha
	}
	if o.Margin <= 1 {
		o.Margin = DefaultMargin
	}
	return o
}

// Regression is a run compared with a baseline, cell by cell and metric by metric.
type Regression struct {
	Schema   string  `json:"schema"`
	Scenario string  `json:"scenario"`
	Mode     string  `json:"mode"`
	Alpha    float64 `json:"alpha"`
	Margin   float64 `json:"margin"`
	// Warnings say how the run's environment differs from the baseline's (kernel, provider, service versions).
	Warnings []string        `json:"warnings,omitempty"`
	Results  []RegressResult `json:"results"`
	Method   string          `json:"method"`
}

// RegressResult is the outcome of one cell and metric.
type RegressResult struct {
	Cell   string `json:"cell"`
	Metric string `json:"metric"` // "bad windows" or "reset windows"
	Status string `json:"status"` // better | same | worse | inconclusive
	// BaseBad of BaseWindows against RunBad of RunWindows: the counts tested.
	BaseBad     int `json:"base_bad"`
	BaseWindows int `json:"base_windows"`
	RunBad      int `json:"run_bad"`
	RunWindows  int `json:"run_windows"`
	// Dispersion is the factor the counts were divided by for the variation between rounds (1: none seen).
	Dispersion float64 `json:"dispersion"`
	// PWorse is the one-sided Fisher exact p-value that the run has more, PBetter fewer; the Holm thresholds
	// are over the comparison's family of PWorse (and of PBetter) values.
	PWorse     float64 `json:"p_worse"`
	PBetter    float64 `json:"p_better"`
	WorseHolm  float64 `json:"worse_holm_threshold"`
	BetterHolm float64 `json:"better_holm_threshold"`
	OddsRatio  float64 `json:"odds_ratio"`
	// OddsRatioCI is the conditional exact (1-2 alpha) interval of the odds ratio, run over baseline; its Hi
	// may be +Inf, which JSON cannot hold: OddsLo and OddsHi carry it (OddsHi null: unbounded).
	OddsRatioCI Interval `json:"-"`
	OddsLo      float64  `json:"odds_ratio_lo"`
	OddsHi      *float64 `json:"odds_ratio_hi"`
	Test        string   `json:"test"`
	Detail      string   `json:"detail"`
}

// Worse says whether some result is worse: the comparison's exit status.
func (g *Regression) Worse() bool {
	return slices.ContainsFunc(g.Results, func(r RegressResult) bool { return r.Status == RegressWorse })
}

// Count is the number of results with the status.
func (g *Regression) Count(status string) int {
	n := 0
	for _, r := range g.Results {
		if r.Status == status {
			n++
		}
	}
	return n
}

// regressMetrics are the metrics compared, each a count of windows out of the cell's windows.
var regressMetrics = []struct {
	name string
	base func(*BaselineCell) (int, []int)
	run  func(*CellStats) (int, []int)
}{
	{"bad windows", func(c *BaselineCell) (int, []int) { return c.BadWindows, roundsOf(c.Rounds, badOf) },
		func(s *CellStats) (int, []int) { return s.BadWindows, roundsOf(s.Rounds, badOf) }},
	{"reset windows", func(c *BaselineCell) (int, []int) { return c.ResetWindows, roundsOf(c.Rounds, resetOf) },
		func(s *CellStats) (int, []int) { return s.ResetWindows, roundsOf(s.Rounds, resetOf) }},
}

func badOf(r RoundCounts) int   { return r.BadWindows }
func resetOf(r RoundCounts) int { return r.ResetWindows }

// roundsOf interleaves the rounds' (bad, windows) counts: [bad0, windows0, bad1, windows1, ...].
func roundsOf(rs []RoundCounts, f func(RoundCounts) int) []int {
	var out []int
	for _, r := range rs {
		out = append(out, f(r), r.Windows)
	}
	return out
}

// Mismatch is why a run cannot be compared with a baseline.
type Mismatch struct{ Why string }

func (m *Mismatch) Error() string { return "cannot compare: " + m.Why }

// CompareBaseline compares a run's report with a baseline, per cell and metric. It refuses (a *Mismatch) a
// run of another scenario, mode or cell set, and warns when the kernel, provider or a service's version differ.
func CompareBaseline(b *Baseline, r *Report, o RegressOptions) (*Regression, error) {
	o = o.withDefaults()
	if err := matches(b, r); err != nil {
		return nil, err
	}
	g := &Regression{Schema: RegressionSchema, Scenario: r.Scenario, Mode: b.Mode, Alpha: o.Alpha,
		Margin: o.Margin, Warnings: envWarnings(b, r)}
	g.Method = fmt.Sprintf(methodRegress, o.Alpha, o.Margin, o.Margin, 100*(1-2*o.Alpha), o.Alpha)
	for _, bc := range b.Cells {
		st := r.Cell(bc.Name).Stats
		for _, m := range regressMetrics {
			bk, br := m.base(&bc)
			rk, rr := m.run(st)
			g.Results = append(g.Results, regressOne(bc.Name, m.name, bk, bc.Windows, br, rk, st.Windows, rr, o))
		}
	}
	decideRegress(g.Results, o)
	return g, nil
}

const methodRegress = "per cell and metric, the windows (reloads, or fixed windows without a storm) with at " +
	"least one failure (bad windows) or one refused or reset attempt (reset windows), baseline against run. " +
	"worse: one-sided Fisher exact test that the run has more, Holm-corrected over every cell and metric of " +
	"the comparison at alpha %g (family-wise false-alarm rate at most alpha per nightly comparison); better: " +
	"the same for fewer. same: an equivalence test (two one-sided tests): the conditional exact " +
	"confidence interval of the odds ratio of a bad window, run over baseline, lies within [1/%g, %g]; that " +
	"interval is %g%%, so a same is wrong at most alpha=%g of the time when the true change is at the margin " +
	"or beyond. inconclusive: none of these. When a cell's rounds vary more than binomially (the machine " +
	"drifted), both runs' counts are divided by the dispersion factor (Pearson's chi-square over the rounds " +
	"divided by its degrees of freedom, pooled over both runs, at least 1) before testing: a quasi-binomial " +
	"correction. Drift between days can still exceed drift between rounds: see docs/reports.md"

// matches says why b and r cannot be compared (nil when they can).
func matches(b *Baseline, r *Report) error {
	if b.Scenario != r.Scenario {
		return &Mismatch{fmt.Sprintf("the baseline is of scenario %q, the run of %q", b.Scenario, r.Scenario)}
	}
	mode, _ := r.Env["mode"].(string)
	if mode == "" {
		mode = "quick"
	}
	if b.Mode != mode {
		return &Mismatch{fmt.Sprintf("the baseline ran in %s mode, the run in %s mode (durations, rates and "+
			"sysctls differ)", b.Mode, mode)}
	}
	var bn, rn []string
	for _, c := range b.Cells {
		bn = append(bn, c.Name)
	}
	for _, c := range r.Cells {
		if c.Stats != nil {
			rn = append(rn, c.Name)
		}
	}
	slices.Sort(bn)
	slices.Sort(rn)
	if !slices.Equal(bn, rn) {
		return &Mismatch{fmt.Sprintf("the cell sets differ: baseline [%s], run [%s] (only in the baseline: "+
			"[%s]; only in the run: [%s])", strings.Join(bn, ", "), strings.Join(rn, ", "),
			strings.Join(minus(bn, rn), ", "), strings.Join(minus(rn, bn), ", "))}
	}
	return nil
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// envWarnings names what differs between the baseline's environment and the run's.
func envWarnings(b *Baseline, r *Report) []string {
	var w []string
	e := envOf(r.Env)
	for _, d := range []struct{ what, base, run string }{{"kernel", b.Env.Kernel, e.Kernel},
		{"provider", b.Env.Provider, e.Provider}} {
		if d.base != d.run {
			w = append(w, fmt.Sprintf("%s differs: baseline %q, run %q", d.what, d.base, d.run))
		}
	}
	if b.Env.CPUs != 0 && e.CPUs != 0 && b.Env.CPUs != e.CPUs {
		w = append(w, fmt.Sprintf("CPUs differ: baseline %d, run %d", b.Env.CPUs, e.CPUs))
	}
	for _, bc := range b.Cells {
		rc := r.Cell(bc.Name)
		for _, bs := range bc.Services {
			for _, rs := range rc.Services {
				if rs.Name == bs.Name && (rs.Kind != bs.Kind || rs.Version != bs.Version) {
					w = append(w, fmt.Sprintf("cell %s: service %s is %s %s in the baseline, %s %s in the run",
						bc.Name, bs.Name, bs.Kind, bs.Version, rs.Kind, rs.Version))
				}
			}
		}
	}
	return w
}

// regressOne computes the tests of one cell and metric; decideRegress gives it its status.
func regressOne(cell, metric string, bk, bn int, brounds []int, rk, rn int, rrounds []int,
	o RegressOptions) RegressResult {
	res := RegressResult{Cell: cell, Metric: metric, BaseBad: bk, BaseWindows: bn, RunBad: rk, RunWindows: rn}
	res.Dispersion = dispersion(brounds, rrounds)
	ek, en, fk, fn := shrink(bk, res.Dispersion), shrink(bn, res.Dispersion),
		shrink(rk, res.Dispersion), shrink(rn, res.Dispersion)
	res.PWorse = FisherLess(ek, en, fk, fn)
	res.PBetter = FisherLess(fk, fn, ek, en)
	res.OddsRatio = oddsRatio(ek, en, fk, fn)
	res.OddsRatioCI = OddsRatioCI(ek, en, fk, fn, o.Alpha)
	res.OddsLo = res.OddsRatioCI.Lo
	if hi := res.OddsRatioCI.Hi; !math.IsInf(hi, 1) {
		res.OddsHi = &hi
	}
	res.Test = "one-sided Fisher exact tests (Holm over the comparison) and the conditional exact odds-ratio " +
		"interval for equivalence"
	if res.Dispersion > 1 {
		res.Test += fmt.Sprintf(", on counts divided by the dispersion %.2f (%d/%d vs %d/%d)", res.Dispersion,
			ek, en, fk, fn)
	}
	return res
}

// dispersion is Pearson's chi-square of each run's rounds (bad vs good windows by round) over its degrees of
// freedom, pooled over both runs, at least 1. Rounds come as [bad0, windows0, bad1, windows1, ...].
func dispersion(runs ...[]int) float64 {
	chi, df := 0.0, 0
	for _, rs := range runs {
		k, n := 0, 0
		for i := 0; i+1 < len(rs); i += 2 {
			k, n = k+rs[i], n+rs[i+1]
		}
		if len(rs) < 4 || n == 0 || k == 0 || k == n {
			continue
		}
		p := float64(k) / float64(n)
		used := 0
		for i := 0; i+1 < len(rs); i += 2 {
			if rs[i+1] == 0 {
				continue
			}
			e := p * float64(rs[i+1])
			d := float64(rs[i]) - e
			chi += d * d / (e * (1 - p))
			used++
		}
		df += used - 1
	}
	if df <= 0 {
		return 1
	}
	return math.Max(1, chi/float64(df))
}

// shrink divides a count by the dispersion factor, rounding to nearest (rounding keeps k <= n).
func shrink(k int, phi float64) int {
	if phi <= 1 {
		return k
	}
	return int(math.Round(float64(k) / phi))
}

// oddsRatio is the sample odds ratio of a bad window, run (b of m) over baseline (a of n), with 0.5 added to
// each cell when one is zero.
func oddsRatio(a, n, b, m int) float64 {
	x := []float64{float64(a), float64(n - a), float64(b), float64(m - b)}
	if slices.Contains(x, 0) {
		for i := range x {
			x[i] += 0.5
		}
	}
	return (x[2] / x[3]) / (x[0] / x[1])
}

// OddsRatioCI is the conditional exact (Cornfield) confidence interval, at level 1-2alpha, of the odds ratio
// of run (b of m) over baseline (a of n): given the margins, b is noncentral hypergeometric in the odds ratio
// psi; Lo solves P(X >= b; Lo) = alpha and Hi solves P(X <= b; Hi) = alpha (R's fisher.test conf.int with
// conf.level 1-2alpha, which R finds with a looser root finder). Lo is 0 when b is the smallest possible
// count, Hi +Inf when the largest.
func OddsRatioCI(a, n, b, m int, alpha float64) Interval {
	checkCount(a, n)
	checkCount(b, m)
	d := newNCHyper(a+b, n, m)
	iv := Interval{0, math.Inf(1)}
	if b > d.lo {
		iv.Lo = solvePsi(func(lp float64) float64 { return d.tail(b, lp, true) }, alpha, true)
	}
	if b < d.hi {
		iv.Hi = solvePsi(func(lp float64) float64 { return d.tail(b, lp, false) }, alpha, false)
	}
	return iv
}

// ncHyper is the noncentral hypergeometric law of X, the run's share of t bad windows between the baseline's
// n windows and the run's m, given the margins: P(X = y) is proportional to C(m,y) C(n,t-y) psi^y.
type ncHyper struct {
	lo, hi int
	logs   []float64 // log C(m,y) + log C(n,t-y) for y in [lo, hi]
}

func newNCHyper(t, n, m int) *ncHyper {
	d := &ncHyper{lo: max(0, t-n), hi: min(t, m)}
	for y := d.lo; y <= d.hi; y++ {
		d.logs = append(d.logs, logChoose(m, y)+logChoose(n, t-y))
	}
	return d
}

// tail is P(X >= x) (upper) or P(X <= x) at the log odds ratio lp.
func (d *ncHyper) tail(x int, lp float64, upper bool) float64 {
	top := math.Inf(-1)
	for i, l := range d.logs {
		top = math.Max(top, l+float64(d.lo+i)*lp)
	}
	all, tail := 0.0, 0.0
	for i, l := range d.logs {
		y := d.lo + i
		e := math.Exp(l + float64(y)*lp - top)
		all += e
		if (upper && y >= x) || (!upper && y <= x) {
			tail += e
		}
	}
	return tail / all
}

// solvePsi finds the odds ratio at which tail (a function of log psi, increasing when increasing is true)
// equals alpha, by bisection over log psi in [-40, 40].
func solvePsi(tail func(float64) float64, alpha float64, increasing bool) float64 {
	a, b := -40.0, 40.0
	for range 60 {
		mid := (a + b) / 2
		if (tail(mid) < alpha) == increasing {
			a = mid
		} else {
			b = mid
		}
	}
	return math.Exp((a + b) / 2)
}

// decideRegress sets each result's status: Holm over the worse p-values, then over the better ones, then the
// equivalence interval.
func decideRegress(rs []RegressResult, o RegressOptions) {
	pw, pb, alphas := make([]float64, len(rs)), make([]float64, len(rs)), make([]float64, len(rs))
	for i, r := range rs {
		pw[i], pb[i], alphas[i] = r.PWorse, r.PBetter, o.Alpha
	}
	hw, hb := holm(pw, alphas), holm(pb, alphas)
	for i := range rs {
		r := &rs[i]
		r.WorseHolm, r.BetterHolm = hw[i].Threshold, hb[i].Threshold
		counts := fmt.Sprintf("%s %d/%d in the baseline, %d/%d in the run", r.Metric, r.BaseBad, r.BaseWindows,
			r.RunBad, r.RunWindows)
		ci := fmt.Sprintf("odds ratio %.3g, %g%% interval [%.3g, %s]", r.OddsRatio, 100*(1-2*o.Alpha),
			r.OddsRatioCI.Lo, fmtHi(r.OddsRatioCI.Hi))
		if r.Dispersion > 1 {
			ci += fmt.Sprintf(" (counts divided by the rounds' dispersion %.2f)", r.Dispersion)
		}
		switch {
		case hw[i].Reject:
			r.Status = RegressWorse
			r.Detail = fmt.Sprintf("%s: more in the run, p=%s < %s (Holm); %s", counts, fmtP(r.PWorse),
				fmtP(r.WorseHolm), ci)
		case hb[i].Reject:
			r.Status = RegressBetter
			r.Detail = fmt.Sprintf("%s: fewer in the run, p=%s < %s (Holm); %s", counts, fmtP(r.PBetter),
				fmtP(r.BetterHolm), ci)
		case r.OddsRatioCI.Lo >= 1/o.Margin && r.OddsRatioCI.Hi <= o.Margin:
			r.Status = RegressSame
			r.Detail = fmt.Sprintf("%s: %s, within [1/%g, %g]: equivalent at alpha %g (p worse %s, better %s)",
				counts, ci, o.Margin, o.Margin, o.Alpha, fmtP(r.PWorse), fmtP(r.PBetter))
		case r.BaseBad == 0 && r.RunBad == 0:
			r.Status = RegressInconclusive
			r.Detail = fmt.Sprintf("%s: none in either, no difference detectable, but no ratio can be bounded "+
				"(both below %s and %s at 95%%)", counts, fmtPct(ClopperPearson(0, r.BaseWindows, 0.95).Hi),
				fmtPct(ClopperPearson(0, r.RunWindows, 0.95).Hi))
		default:
			r.Status = RegressInconclusive
			r.Detail = fmt.Sprintf("%s: no significant change (p worse %s ≥ %s, better %s ≥ %s) and %s is not "+
				"within [1/%g, %g]: the data cannot tell", counts, fmtP(r.PWorse), fmtP(r.WorseHolm),
				fmtP(r.PBetter), fmtP(r.BetterHolm), ci, o.Margin, o.Margin)
		}
	}
}

func fmtHi(x float64) string {
	if math.IsInf(x, 1) {
		return "∞"
	}
	return fmt.Sprintf("%.3g", x)
}
