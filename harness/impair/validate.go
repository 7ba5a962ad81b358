package impair

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Limits of what an impairment may ask for (both engines honour them exactly).
const (
	MaxDelay = time.Minute
	// DelayResolution is the granularity of delay and jitter (netem's unit is the microsecond).
	DelayResolution = time.Microsecond
	MinRate         = Rate(8_000)
	MaxRate         = Rate(100_000_000_000)
)

// Engine names a scenario may ask for.
const (
	EngineAuto      = "auto"
	EngineNetem     = "netem"
	EngineUserspace = "userspace"
)

// Validate checks the whole configuration; all problems are returned together, each naming its field
// (e.g. "links[0].to_host.impairment.jitter").
func (c Config) Validate() error {
	var errs []error
	switch c.Engine {
	case "", EngineAuto, EngineNetem, EngineUserspace:
	default:
		errs = append(errs, fmt.Errorf("engine: %q is not one of auto, netem, userspace", c.Engine))
	}
	seen := map[string]int{}
	for i, l := range c.Links {
		path := fmt.Sprintf("links[%d]", i)
		if l.Host == "" {
			errs = append(errs, fmt.Errorf("%s.host: required", path))
		} else if first, dup := seen[l.Host]; dup {
			errs = append(errs, fmt.Errorf("%s.host: %q already impaired by links[%d]", path, l.Host, first))
		} else {
			seen[l.Host] = i
		}
		if l.ToHost == nil && l.FromHost == nil {
			errs = append(errs, fmt.Errorf("%s: set to_host, from_host or both", path))
		}
		if l.ToHost != nil {
			errs = append(errs, l.ToHost.validate(path+".to_host")...)
		}
		if l.FromHost != nil {
			errs = append(errs, l.FromHost.validate(path+".from_host")...)
		}
	}
	return errors.Join(errs...)
}

func (d DirConfig) validate(path string) []error {
	errs := d.Impairment.validate(path + ".impairment")
	var last time.Duration
	for i, s := range d.Schedule {
		p := fmt.Sprintf("%s.schedule[%d]", path, i)
		switch {
		case s.At <= 0:
			errs = append(errs, fmt.Errorf("%s.at: %s must be > 0 (the impairment field holds the start)", p, s.At))
		case s.At <= last:
			errs = append(errs, fmt.Errorf("%s.at: %s must be after the previous step's %s", p, s.At, last))
		}
		last = max(last, s.At)
		errs = append(errs, s.Impairment.validate(p+".impairment")...)
	}
	return errs
}

// Validate checks one impairment; errors name fields relative to it.
func (imp Impairment) Validate() error { return errors.Join(imp.validate("impairment")...) }

func (imp Impairment) validate(path string) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, field, fmt.Sprintf(format, args...)))
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"delay", imp.Delay}, {"jitter", imp.Jitter}} {
		switch {
		case f.d < 0:
			bad(f.name, "%s is negative", f.d)
		case f.d > MaxDelay:
			bad(f.name, "%s exceeds the maximum %s", f.d, MaxDelay)
		case f.d%DelayResolution != 0:
			bad(f.name, "%s is finer than the resolution %s", f.d, DelayResolution)
		}
	}
	dist := imp.Distribution.orDefault()
	switch dist {
	case Uniform, Normal, Pareto:
	default:
		bad("distribution", "%q is not one of uniform, normal, pareto", imp.Distribution)
	}
	if imp.Distribution != "" && imp.Jitter == 0 {
		bad("distribution", "%s set without jitter", imp.Distribution)
	}
	if imp.Jitter > 0 {
		switch {
		case imp.Delay == 0:
			bad("jitter", "%s needs a delay to vary", imp.Jitter)
		case dist != Pareto && imp.Jitter > imp.Delay:
			bad("jitter", "%s exceeds delay %s (allowed only with distribution pareto)", imp.Jitter, imp.Delay)
		}
	}
	if !isProb(imp.Loss) {
		bad("loss", "%g is not a probability in [0,1] (1%% is 0.01)", imp.Loss)
	}
	if g := imp.LossBurst; g != nil {
		if imp.Loss > 0 {
			bad("loss_burst", "set together with loss: choose one loss model")
		}
		for _, f := range []struct {
			name string
			v    float64
		}{{"p", g.P}, {"r", g.R}, {"one_minus_h", g.OneMinusH}, {"one_minus_k", g.OneMinusK}} {
			if !isProb(f.v) {
				bad("loss_burst."+f.name, "%g is not a probability in [0,1]", f.v)
			}
		}
	}
	if imp.Rate != 0 && (imp.Rate < MinRate || imp.Rate > MaxRate) {
		bad("rate", "%s is outside %s to %s", imp.Rate, MinRate, MaxRate)
	}
	return errs
}

func isProb(p float64) bool { return !math.IsNaN(p) && p >= 0 && p <= 1 }
