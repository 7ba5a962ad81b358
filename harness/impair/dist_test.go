package impair

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/testutil"
)

// readDist reads an iproute2 .dist file, or skips when iproute2's tables are not installed.
func readDist(t *testing.T, name string) []int16 {
	t.Helper()
	for _, dir := range []string{"/usr/lib/x86_64-linux-gnu/tc", "/usr/lib/tc", "/usr/lib64/tc"} {
		b, err := os.ReadFile(dir + "/" + name + ".dist")
		if err != nil {
			continue
		}
		var out []int16
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			for _, f := range strings.Fields(line) {
				v, err := strconv.Atoi(f)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				out = append(out, int16(v))
			}
		}
		return out
	}
	testutil.SkipMissing(t, fmt.Sprintf("iproute2's %s.dist is not installed (make deps installs iproute2)", name))
	return nil
}

// Our tables match iproute2's (within rounding of its grid search for the normal table), so a scenario
// means the same jitter on either engine and as with tc.
func TestDistTablesMatchIproute2(t *testing.T) {
	for _, tc := range []struct {
		name string
		ours []int16
		tol  int
	}{{"pareto", paretoTable(), 1}, {"normal", normalTable(), 300}} {
		ref := readDist(t, tc.name)
		if len(ref) != len(tc.ours) {
			t.Fatalf("%s: %d entries, iproute2 has %d", tc.name, len(tc.ours), len(ref))
		}
		worst := 0
		for i := range ref {
			worst = max(worst, abs(int(ref[i])-int(tc.ours[i])))
		}
		if worst > tc.tol {
			t.Errorf("%s: largest difference from iproute2 %d > %d", tc.name, worst, tc.tol)
		}
	}
}

func abs(x int) int { return max(x, -x) }

// Sample moments of the jitter distributions. With 200,000 draws the standard error of the mean is
// sigma/447 and of the standard deviation about sigma/632 (normal), so the tolerances below (0.5% of
// sigma for the mean, 1% for the deviation) are over 2.2 and 6 standard errors: the test is deterministic
// with a fixed seed anyway.
func TestSamplerMoments(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 200_000
	for _, tc := range []struct {
		dist     Distribution
		wantSD   float64 // in units of jitter
		min, max time.Duration
	}{
		{Uniform, 1 / math.Sqrt(3), 15 * time.Millisecond, 25 * time.Millisecond},
		{Normal, 1, 0, 40 * time.Millisecond}, // the table spans 4 standard deviations
	} {
		s := newSampler(Impairment{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Distribution: tc.dist})
		var sum, sq float64
		lo, hi := time.Hour, time.Duration(0)
		for range n {
			d := s.sample(r)
			lo, hi = min(lo, d), max(hi, d)
			x := float64(d-20*time.Millisecond) / float64(5*time.Millisecond)
			sum += x
			sq += x * x
		}
		mean := sum / n
		sd := math.Sqrt(sq/n - mean*mean)
		if math.Abs(mean) > 0.005*3 || math.Abs(sd-tc.wantSD) > 0.01 {
			t.Errorf("%s: mean %.4f sd %.4f (jitter units), want 0 and %.4f", tc.dist, mean, sd, tc.wantSD)
		}
		if lo < tc.min || hi > tc.max {
			t.Errorf("%s: range [%s, %s] outside [%s, %s]", tc.dist, lo, hi, tc.min, tc.max)
		}
	}
	p := newSampler(Impairment{Delay: 10 * time.Millisecond, Jitter: 20 * time.Millisecond, Distribution: Pareto})
	for range 10_000 {
		if d := p.sample(r); d < 0 {
			t.Fatalf("pareto gave a negative delay %s", d)
		}
	}
}

// The Gilbert-Elliott simulation's long-run loss matches the closed form. 2,000,000 packets with mean
// bursts of 1/r: the loss rate's standard error is well under 0.0003 here; the tolerance is 0.001.
func TestGEStationaryLoss(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, m := range []GilbertElliott{{P: 0.01, R: 0.3, OneMinusH: 0.5}, {P: 0.05, R: 0.5, OneMinusH: 1, OneMinusK: 0.01}} {
		g := geState{m: m}
		lost := 0
		const n = 2_000_000
		for range n {
			if g.lose(r) {
				lost++
			}
		}
		if got := float64(lost) / n; math.Abs(got-m.MeanLoss()) > 0.001 {
			t.Errorf("%+v: loss %.5f, want %.5f", m, got, m.MeanLoss())
		}
	}
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	if q := h.quantile(0.5); q < 495*time.Microsecond || q > 505*time.Microsecond {
		t.Errorf("p50 %s", q)
	}
	if q := h.quantile(0.99); q < 985*time.Microsecond || q > 995*time.Microsecond {
		t.Errorf("p99 %s", q)
	}
	if h.max != time.Millisecond || h.mean() != 500500*time.Nanosecond {
		t.Errorf("max %s mean %s", h.max, h.mean())
	}
	h.add(time.Hour)
	if q := h.quantile(1); q != time.Hour {
		t.Errorf("p100 %s", q)
	}
}
