package results

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// nightlyFamilies are the scenario families' long modes as the nightly comparison sees them: windows per
// cell (reloads, or 1 s windows), the reference cell's bad-window fraction in the baseline, and the cells
// compared (each with two metrics, so Holm's smallest threshold is alpha / (2 cells)). Reload counts: measured
// for reload-thin (110 legacy reloads in the committed baseline); for reload.yaml, 12 times the ~290 reloads a
// quick 30 s cell makes (long: 360 s), legacy 6-34% bad (docs/reload.md, the low end taken). Exhaustion: 120
// 1 s windows (long: 120 s).
var nightlyFamilies = []struct {
	file    string
	windows int
	p0      float64
	cells   int
}{
	{"reload-thin.yaml", 110, 0.20, 3},
	{"reload.yaml", 3480, 0.06, 12},
	{"reload-workers.yaml", 3480, 0.06, 10},
	{"exhaustion.yaml", 120, 0, 14},
}

// TestNightlyPower prints, per family, the smallest change its long mode detects at alpha 0.01 (Holm's
// smallest threshold over its cells' 2 metrics each) with power 0.8, and checks each by simulation (500 seeded
// comparisons of n against n windows): the exact test must find it worse at least 70% of the time (the normal
// approximation is somewhat optimistic for the exact test at small counts), and at most alpha of the time when
// nothing changed.
func TestNightlyPower(t *testing.T) {
	const alpha, power, reps = 0.01, 0.8, 500
	rng := rand.New(rand.NewPCG(3, 4))
	binom := func(n int, p float64) int {
		k := 0
		for range n {
			if rng.Float64() < p {
				k++
			}
		}
		return k
	}
	for _, f := range nightlyFamilies {
		level := alpha / float64(2*f.cells)
		var p1 float64
		var what string
		if f.p0 == 0 {
			k := DetectableFromZero(f.windows, level)
			p1 = float64(k) / float64(f.windows)
			what = fmt.Sprintf("a cell that never failed: %d bad windows of %d", k, f.windows)
			// at the fraction k/n a run has at least k bad windows about half the time; power 0.8 needs more
			for simWorse(rng, binom, 0, p1, f.windows, level, reps) < power && p1 < 1 {
				p1 *= 1.05
			}
			what += fmt.Sprintf(" (power %.1f at a fraction of %s)", power, fmtPct(p1))
		} else {
			p1 = DetectableFraction(f.p0, f.windows, level, power)
			what = fmt.Sprintf("%s -> %s (x%.2f); a cell that never failed: %d bad windows of %d", fmtPct(f.p0),
				fmtPct(p1), p1/f.p0, DetectableFromZero(f.windows, level), f.windows)
		}
		hit := simWorse(rng, binom, f.p0, p1, f.windows, level, reps)
		false0 := simWorse(rng, binom, f.p0, f.p0, f.windows, level, reps)
		t.Logf("%-20s %5d windows/cell, level %.2g: smallest change %s; simulated power %.2f, false alarms %.3f",
			f.file, f.windows, level, what, hit, false0)
		if hit < 0.7 {
			t.Errorf("%s: simulated power %.2f at the computed change, want >= 0.7", f.file, hit)
		}
		if bound := level + 3*math.Sqrt(level*(1-level)/reps); false0 > bound {
			t.Errorf("%s: false alarms %.3f, want <= %.3f", f.file, false0, bound)
		}
	}
}

// simWorse is the share of reps simulated comparisons (n windows each, fractions p0 and p1) that the one-sided
// Fisher exact test finds worse at the level.
func simWorse(rng *rand.Rand, binom func(int, float64) int, p0, p1 float64, n int, level float64, reps int) float64 {
	hits := 0
	for range reps {
		if FisherLess(binom(n, p0), n, binom(n, p1), n) < level {
			hits++
		}
	}
	return float64(hits) / float64(reps)
}
