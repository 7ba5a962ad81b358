package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/faultlab/faultlab/harness/impair"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/results"
)

// impairConfig turns the scenario's impair section into the engine's configuration.
func impairConfig(s *spec.Impair) (impair.Config, error) {
	cfg := impair.Config{Engine: s.Engine}
	for _, l := range s.Links {
		lc := impair.LinkConfig{Host: l.Host}
		var err error
		if lc.ToHost, err = impairDir(l.ToHost); err != nil {
			return cfg, fmt.Errorf("impair %s to_host: %w", l.Host, err)
		}
		if lc.FromHost, err = impairDir(l.FromHost); err != nil {
			return cfg, fmt.Errorf("impair %s from_host: %w", l.Host, err)
		}
		cfg.Links = append(cfg.Links, lc)
	}
	return cfg, nil
}

func impairDir(d *spec.ImpairDir) (*impair.DirConfig, error) {
	if d == nil {
		return nil, nil
	}
	imp, err := impairment(d.Impairment)
	if err != nil {
		return nil, err
	}
	out := &impair.DirConfig{Impairment: imp}
	for _, st := range d.Schedule {
		imp, err := impairment(st.Impairment)
		if err != nil {
			return nil, fmt.Errorf("step at %s: %w", st.At, err)
		}
		out.Schedule = append(out.Schedule, impair.Step{At: st.At, Impairment: imp})
	}
	return out, nil
}

func impairment(s spec.Impairment) (impair.Impairment, error) {
	imp := impair.Impairment{Delay: s.Delay, Jitter: s.Jitter, Distribution: impair.Distribution(s.Distribution),
		KeepOrder: s.KeepOrder, Loss: s.Loss}
	if b := s.LossBurst; b != nil {
		imp.LossBurst = &impair.GilbertElliott{P: b.P, R: b.R, OneMinusH: b.OneMinusH, OneMinusK: b.OneMinusK}
	}
	if s.Rate != "" {
		r, err := impair.ParseRate(s.Rate)
		if err != nil {
			return imp, err
		}
		imp.Rate = r
	}
	return imp, nil
}

// startImpair applies the cell's impairments (the schedule counts from now, just before the epoch) and
// returns a stop function that ends them and records the engine's report: the engine used, what was applied
// when, and whether it kept up.
func (c *cellRun) startImpair(ctx context.Context) (stop func() error, err error) {
	s := c.cell.Scenario.Impair
	if s == nil || len(s.Links) == 0 {
		return func() error { return nil }, nil
	}
	cfg, err := impairConfig(s)
	if err != nil {
		return nil, err
	}
	run, err := impair.Start(ctx, c.env, cfg, impair.Options{})
	if err != nil {
		return nil, err
	}
	return func() error {
		rep, err := run.Close()
		c.setInfo("impairment_engine", rep.Engine)
		b, jerr := json.Marshal(rep)
		if jerr != nil {
			return errors.Join(err, fmt.Errorf("encode impairment report: %w", jerr))
		}
		summary := fmt.Sprintf("engine %s (asked: %s)", rep.Engine, rep.Requested)
		for _, w := range rep.Warnings {
			summary += "; " + w
		}
		c.addAnalysis(results.AnalysisResult{Name: "impair", Rep: c.cell.Rep, Summary: summary, Result: b})
		return err
	}, nil
}
