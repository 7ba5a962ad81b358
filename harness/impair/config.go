package impair

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Config is the impairment section of a scenario: which engine, and what each link suffers.
type Config struct {
	// Engine is auto (default: netem where the kernel has it, else userspace), netem or userspace. A named
	// engine that is absent fails the run with the reason; auto never fails for that.
	Engine string `yaml:"engine" json:"engine,omitempty"`
	// Links lists impaired links; a link not listed is left alone.
	Links []LinkConfig `yaml:"links" json:"links,omitempty"`
}

// LinkConfig impairs the link between one host and the router, in either or both directions.
type LinkConfig struct {
	// Host names the link: the veth between this host and the router.
	Host string `yaml:"host" json:"host"`
	// ToHost is router -> host (egress of the router-side veth).
	ToHost *DirConfig `yaml:"to_host" json:"to_host,omitempty"`
	// FromHost is host -> router (ingress of the router-side veth).
	FromHost *DirConfig `yaml:"from_host" json:"from_host,omitempty"`
}

// DirConfig is one direction of a link: the impairment in force from the start of the run, then the
// schedule's steps, each of which replaces the whole impairment of this direction at its time.
type DirConfig struct {
	Impairment Impairment `yaml:"impairment" json:"impairment"`
	Schedule   []Step     `yaml:"schedule" json:"schedule,omitempty"`
}

// Step replaces a direction's impairment At this offset from the start of the run. An empty Impairment
// clears it: 2% loss from 10s to 20s is [{at: 10s, impairment: {loss: 0.02}}, {at: 20s}].
type Step struct {
	At         time.Duration `yaml:"at" json:"at"`
	Impairment Impairment    `yaml:"impairment" json:"impairment"`
}

// Impairment is what one direction of one link suffers. The zero value is a clean link.
type Impairment struct {
	// Delay is added to every packet. Jitter varies it: with the uniform distribution (the default) the
	// added delay is uniform in [Delay-Jitter, Delay+Jitter]; with normal, Jitter is the standard deviation;
	// with pareto, the scale of netem's pareto table (mean Delay, long tail above it). Delays below zero
	// are clamped to zero.
	Delay        time.Duration `yaml:"delay" json:"delay,omitempty"`
	Jitter       time.Duration `yaml:"jitter" json:"jitter,omitempty"`
	Distribution Distribution  `yaml:"distribution" json:"distribution,omitempty"`
	// KeepOrder stops jitter from reordering: a packet leaves at max(its own due time, the previous
	// packet's release time) of the same link direction, as netem does when it has a rate.
	KeepOrder bool `yaml:"keep_order" json:"keep_order,omitempty"`
	// Loss is the independent probability in [0,1] that a packet is dropped.
	Loss float64 `yaml:"loss" json:"loss,omitempty"`
	// LossBurst is a Gilbert-Elliott burst-loss model instead of independent loss.
	LossBurst *GilbertElliott `yaml:"loss_burst" json:"loss_burst,omitempty"`
	// Rate limits the direction, in bits per second of whole frames (Ethernet header included, as tc counts).
	Rate Rate `yaml:"rate" json:"rate,omitempty"`
}

// GilbertElliott is netem's "loss gemodel p r 1-h 1-k": a two-state Markov chain evaluated per packet.
// Each probability is in [0,1]. The stationary loss rate is
// (r*OneMinusK + p*OneMinusH) / (p + r).
type GilbertElliott struct {
	P         float64 `yaml:"p" json:"p"`                     // good -> bad transition probability
	R         float64 `yaml:"r" json:"r"`                     // bad -> good transition probability
	OneMinusH float64 `yaml:"one_minus_h" json:"one_minus_h"` // loss probability in the bad state (1-h)
	OneMinusK float64 `yaml:"one_minus_k" json:"one_minus_k"` // loss probability in the good state (1-k)
}

// MeanLoss is the model's stationary loss probability.
func (g GilbertElliott) MeanLoss() float64 {
	if g.P+g.R == 0 {
		return g.OneMinusK // never leaves the good state
	}
	return (g.R*g.OneMinusK + g.P*g.OneMinusH) / (g.P + g.R)
}

// IsZero reports whether the impairment changes nothing.
func (imp Impairment) IsZero() bool {
	return imp.Delay == 0 && imp.Jitter == 0 && imp.Loss == 0 && imp.LossBurst == nil && imp.Rate == 0
}

// delays reports whether the impairment holds packets back (delay or jitter).
func (imp Impairment) delays() bool { return imp.Delay > 0 || imp.Jitter > 0 }

func (imp Impairment) String() string {
	var parts []string
	if imp.Delay > 0 || imp.Jitter > 0 {
		s := "delay " + imp.Delay.String()
		if imp.Jitter > 0 {
			s += fmt.Sprintf(" jitter %s %s", imp.Jitter, imp.Distribution.orDefault())
		}
		if imp.KeepOrder {
			s += " keep_order"
		}
		parts = append(parts, s)
	}
	if imp.Loss > 0 {
		parts = append(parts, fmt.Sprintf("loss %g", imp.Loss))
	}
	if g := imp.LossBurst; g != nil {
		parts = append(parts, fmt.Sprintf("loss_burst p=%g r=%g 1-h=%g 1-k=%g", g.P, g.R, g.OneMinusH, g.OneMinusK))
	}
	if imp.Rate > 0 {
		parts = append(parts, "rate "+imp.Rate.String())
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Direction is one direction of a link, seen from the host.
type Direction string

const (
	// ToHost is router -> host: egress of the router-side veth.
	ToHost Direction = "to_host"
	// FromHost is host -> router: ingress of the router-side veth.
	FromHost Direction = "from_host"
)

// Directions lists both directions in a fixed order.
var Directions = []Direction{ToHost, FromHost}

// Distribution shapes jitter.
type Distribution string

const (
	Uniform Distribution = "uniform"
	Normal  Distribution = "normal"
	Pareto  Distribution = "pareto"
)

func (d Distribution) orDefault() Distribution {
	if d == "" {
		return Uniform
	}
	return d
}

// Rate is a bit rate in bits per second. In a scenario file it needs a unit: 10mbit, 10Mbit/s, 500kbit,
// 1gbit, 64000bit (decimal prefixes, as tc uses: 1mbit = 1,000,000 bit/s).
type Rate uint64

var rateUnits = []struct {
	suffix string
	mult   float64
}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}

// ParseRate parses a rate with its unit.
func ParseRate(s string) (Rate, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "/s")
	if strings.HasSuffix(t, "bps") {
		return 0, fmt.Errorf("rate %q: write bits, e.g. 10mbit (tc's \"bps\" means bytes)", s)
	}
	for _, u := range rateUnits {
		num, ok := strings.CutSuffix(t, u.suffix)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f*u.mult > math.MaxInt64 {
			return 0, fmt.Errorf("rate %q: want a non-negative number and a unit such as 10mbit", s)
		}
		return Rate(math.Round(f * u.mult)), nil
	}
	if _, err := strconv.ParseFloat(t, 64); err == nil {
		return 0, fmt.Errorf("rate %q has no unit; write e.g. %smbit or %sbit", s, t, t)
	}
	return 0, fmt.Errorf("rate %q: want a number and a unit: bit, kbit, mbit or gbit", s)
}

// UnmarshalText implements encoding.TextUnmarshaler (YAML and JSON strings).
func (r *Rate) UnmarshalText(b []byte) error {
	v, err := ParseRate(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalText implements encoding.TextMarshaler: the shortest exact form, e.g. "10mbit".
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

func (r Rate) String() string {
	for _, u := range rateUnits {
		m := uint64(u.mult)
		if uint64(r) >= m && uint64(r)%m == 0 {
			return strconv.FormatUint(uint64(r)/m, 10) + u.suffix
		}
	}
	return strconv.FormatUint(uint64(r), 10) + "bit"
}
