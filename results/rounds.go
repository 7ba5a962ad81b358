package results

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"
)

// RoundCounts are one round's counts of a cell. A round is a repetition (Rep): with interleaved blocks every
// cell runs one block per round, so the rounds of two cells ran at about the same time on the same machine, and
// a comparison stratified by round is not confounded by the machine's drift between rounds.
type RoundCounts struct {
	Rep           int `json:"rep"`
	Attempts      int `json:"attempts"`
	Failures      int `json:"failures"`
	Windows       int `json:"windows"`       // windows with at least one attempt
	BadWindows    int `json:"bad_windows"`   // windows with at least one failure
	ResetWindows  int `json:"reset_windows"` // windows with at least one refused or reset attempt
	Reloads       int `json:"reloads"`
	ReloadsFailed int `json:"reloads_failed"`
}

// roundCounter accumulates RoundCounts per repetition: its memory grows with the rounds, not the attempts.
type roundCounter map[int]*RoundCounts

func (rc roundCounter) get(rep int) *RoundCounts {
	r, ok := rc[rep]
	if !ok {
		r = &RoundCounts{Rep: rep}
		rc[rep] = r
	}
	return r
}

func (rc roundCounter) addReloads(evs []ReloadEvent) {
	for _, ev := range evs {
		r := rc.get(ev.Rep)
		r.Reloads++
		if !ev.OK {
			r.ReloadsFailed++
		}
	}
}

func (rc roundCounter) addWindows(ws []Window) {
	for i := range ws {
		w := &ws[i]
		if w.Attempts == 0 {
			continue
		}
		r := rc.get(w.Rep)
		r.Windows++
		if w.Failures > 0 {
			r.BadWindows++
		}
		if w.Resets() > 0 {
			r.ResetWindows++
		}
	}
}

// list returns the rounds ordered by Rep.
func (rc roundCounter) list() []RoundCounts {
	out := make([]RoundCounts, 0, len(rc))
	for _, rep := range slices.Sorted(maps.Keys(rc)) {
		out = append(out, *rc[rep])
	}
	return out
}

// DriftTest names the homogeneity test of Drift.
const DriftTest = "homogeneity of the per-round bad-window fractions: Monte Carlo exact test conditional on the " +
	"total (bad windows reassigned to rounds at random, Pearson chi-square statistic, B=%d resamples, seeded); " +
	"the asymptotic chi-square p-value (df = rounds-1) is given for information"

// Drift is the machine's drift as one cell saw it: the fraction of bad windows in each round, and a test of
// whether the rounds differ by more than chance (they would not if the machine's state were stable).
type Drift struct {
	Cell   string          `json:"cell"`
	Test   string          `json:"test"`
	Rounds []RoundFraction `json:"rounds"`
	// Min and Max are the smallest and largest per-round bad-window fractions.
	Min float64 `json:"min_fraction"`
	Max float64 `json:"max_fraction"`
	// ChiSquare is Pearson's statistic of the 2 x rounds table (bad, good windows by round), DF its degrees
	// of freedom.
	ChiSquare float64 `json:"chi_square"`
	DF        int     `json:"df"`
	// PValue is the Monte Carlo exact p-value ((1 + resamples at least as extreme) / (B + 1)).
	PValue float64 `json:"p_value"`
	// PChiSquare is the asymptotic chi-square p-value, unreliable with few bad windows per round.
	PChiSquare float64 `json:"p_chi_square"`
}

// RoundFraction is one round's bad windows.
type RoundFraction struct {
	Rep        int     `json:"rep"`
	Windows    int     `json:"windows"`
	BadWindows int     `json:"bad_windows"`
	Fraction   float64 `json:"fraction"`
}

// DriftOf tests the homogeneity of the rounds' bad-window fractions. Rounds without windows are left out; with
// fewer than two rounds left it returns nil. The test is deterministic for a given seed.
func DriftOf(cell string, rounds []RoundCounts, resamples int, seed uint64) *Drift {
	d := &Drift{Cell: cell, Test: fmt.Sprintf(DriftTest, resamples), Min: 1}
	var ns, bads []int
	for _, r := range rounds {
		if r.Windows == 0 {
			continue
		}
		f := float64(r.BadWindows) / float64(r.Windows)
		d.Rounds = append(d.Rounds, RoundFraction{Rep: r.Rep, Windows: r.Windows, BadWindows: r.BadWindows,
			Fraction: f})
		d.Min, d.Max = min(d.Min, f), max(d.Max, f)
		ns, bads = append(ns, r.Windows), append(bads, r.BadWindows)
	}
	if len(d.Rounds) < 2 {
		return nil
	}
	d.DF = len(d.Rounds) - 1
	d.ChiSquare = chiSquareHomogeneity(bads, ns)
	d.PChiSquare = 1
	if d.ChiSquare > 0 {
		d.PChiSquare = distuv.ChiSquared{K: float64(d.DF)}.Survival(d.ChiSquare)
	}
	d.PValue = permutationHomogeneity(bads, ns, d.ChiSquare, resamples, seed)
	return d
}

// chiSquareHomogeneity is Pearson's chi-square statistic for the 2 x K table of bad and good windows by round:
// sum over rounds of (bad - n p)^2 / (n p (1-p)), p the pooled fraction. It is 0 when p is 0 or 1.
func chiSquareHomogeneity(bads, ns []int) float64 {
	var b, n int
	for i := range ns {
		b, n = b+bads[i], n+ns[i]
	}
	if b == 0 || b == n {
		return 0
	}
	p := float64(b) / float64(n)
	var x2 float64
	for i := range ns {
		e := float64(ns[i]) * p
		d := float64(bads[i]) - e
		x2 += d * d / (e * (1 - p))
	}
	return x2
}

// permutationHomogeneity is the Monte Carlo p-value of the chi-square statistic x2 given the margins: each
// resample chooses which of the windows are the bad ones uniformly at random (a partial Fisher-Yates shuffle),
// so the rounds' counts follow the multivariate hypergeometric law of the null hypothesis.
func permutationHomogeneity(bads, ns []int, x2 float64, resamples int, seed uint64) float64 {
	if x2 == 0 || resamples <= 0 {
		return 1
	}
	var total, bad int
	for i := range ns {
		total, bad = total+ns[i], bad+bads[i]
	}
	roundOf := make([]int, 0, total)
	for i, n := range ns {
		for range n {
			roundOf = append(roundOf, i)
		}
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x6a09e667f3bcc909))
	sim := make([]int, len(ns))
	extreme := 0
	for range resamples {
		clear(sim)
		for j := range bad { // roundOf stays a permutation of itself: its first bad entries are a random subset
			k := j + rng.IntN(total-j)
			roundOf[j], roundOf[k] = roundOf[k], roundOf[j]
			sim[roundOf[j]]++
		}
		if chiSquareHomogeneity(sim, ns) >= x2*(1-1e-12) {
			extreme++
		}
	}
	return float64(1+extreme) / float64(1+resamples)
}

// fmtFractions lists per-round fractions as percentages: "4%, 12.5%, 39%".
func (d *Drift) fmtFractions() string {
	var s string
	for i, r := range d.Rounds {
		if i > 0 {
			s += ", "
		}
		s += fmtPct(r.Fraction)
	}
	return s
}

// summary is the drift in one sentence, for the Markdown report.
func (d *Drift) summary() string {
	verdict := "no more than chance would give"
	if d.PValue < 0.05 {
		verdict = "more than chance would give: the machine's state changed between rounds"
	}
	return fmt.Sprintf("bad-window fraction of %s per round (%d rounds): %s; homogeneity: Monte Carlo exact "+
		"p=%s (chi-square %.3g, df %d, asymptotic p=%s): %s", d.Cell, len(d.Rounds), d.fmtFractions(),
		fmtP(d.PValue), d.ChiSquare, d.DF, fmtP(d.PChiSquare), verdict)
}
