package impair

import (
	"math"
	"math/rand/v2"
	"time"
)

// Jitter distributions are netem's: a table of distSize samples of a zero-mean variable scaled by
// distScale (NETEM_DIST_SCALE), computed the way iproute2's maketable programs make normal.dist and
// pareto.dist. The netem engine sends the table to the kernel; the userspace engine samples the same table
// with the kernel's formula, so both engines give the same distribution.
const (
	distScale = 8192
	distSize  = 4096
)

// distTable is the table for d, or nil for uniform (netem's default, which needs no table).
func distTable(d Distribution) []int16 {
	switch d.orDefault() {
	case Normal:
		return normalTable()
	case Pareto:
		return paretoTable()
	}
	return nil
}

// normalTable holds standard normal quantiles: entry j is the quantile at (j+1/8)/distSize, as iproute2's
// normal.c produces by keeping every fourth entry of a 16384-entry table.
func normalTable() []int16 {
	t := make([]int16, distSize)
	for j := range t {
		p := (float64(j) + 0.125) / distSize
		t[j] = scaleSample(math.Sqrt2 * math.Erfinv(2*p-1))
	}
	return t
}

// paretoTable holds iproute2's pareto.c samples: a Pareto variable of shape 3 and scale 1 at the upper
// quantile 1-j/distSize, minus its mean 1.5, times 4/3.
func paretoTable() []int16 {
	const shape = 3.0
	t := make([]int16, distSize)
	for j := range t {
		u := 1 - float64(j)/distSize
		t[j] = scaleSample((math.Pow(u, -1/shape) - 1.5) * 4 / 3)
	}
	return t
}

func scaleSample(x float64) int16 {
	v := math.Round(x * distScale)
	return int16(max(math.MinInt16, min(math.MaxInt16, v)))
}

// sampler draws the added delay of one impairment as netem's tabledist does.
type sampler struct {
	mu, sigma int64 // nanoseconds
	table     []int16
}

func newSampler(imp Impairment) sampler {
	return sampler{mu: int64(imp.Delay), sigma: int64(imp.Jitter), table: distTable(imp.Distribution)}
}

// sample is mu + sigma*t/distScale for a random table entry t, or uniform in [mu-sigma, mu+sigma) without a
// table; never negative.
func (s sampler) sample(r *rand.Rand) time.Duration {
	if s.sigma == 0 {
		return time.Duration(s.mu)
	}
	var d int64
	if s.table == nil {
		d = s.mu - s.sigma + r.Int64N(2*s.sigma)
	} else {
		t := int64(s.table[r.IntN(len(s.table))])
		d = s.mu + s.sigma*t/distScale
	}
	return time.Duration(max(d, 0))
}

// geState runs a Gilbert-Elliott model packet by packet, in the kernel's order (sch_netem loss_gilb_ell):
// first the state transition, then the loss draw with the probability of the state the packet arrived in.
type geState struct {
	m   GilbertElliott
	bad bool
}

func (g *geState) lose(r *rand.Rand) bool {
	if !g.bad {
		if r.Float64() < g.m.P {
			g.bad = true
		}
		return r.Float64() < g.m.OneMinusK
	}
	if r.Float64() < g.m.R {
		g.bad = false
	}
	return r.Float64() < g.m.OneMinusH
}
