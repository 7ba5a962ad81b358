package runner

import (
	"context"
	"fmt"

	"github.com/faultlab/faultlab/capture"
	"github.com/faultlab/faultlab/harness/services"
	"github.com/faultlab/faultlab/harness/spec"
)

// probeConfig turns the scenario's probe specs into capture's configuration.
func probeConfig(p *spec.Probes) capture.Config {
	var c capture.Config
	if p == nil {
		return c
	}
	for _, l := range p.Capture {
		c.Links = append(c.Links, capture.LinkCapture{Host: l.Host, Iface: l.Iface, Snaplen: l.Snaplen, Filter: l.Filter})
	}
	for _, st := range p.States {
		c.States = append(c.States, capture.StateSampler{Host: st.Host, Interval: st.Interval})
	}
	for _, pr := range p.Procs {
		c.Procs = append(c.Procs, capture.ProcSampler{Service: pr.Service, Interval: pr.Interval})
	}
	return c
}

// startProbes starts the cell's probes (before the load, so captures see every packet); stop ends them and
// finalises their files, which the cell's analyses read afterwards.
func (c *cellRun) startProbes(ctx context.Context) (stop func() error, err error) {
	cfg := probeConfig(c.cell.Scenario.Probes)
	if len(cfg.Links)+len(cfg.States)+len(cfg.Procs) == 0 {
		return func() error { return nil }, nil
	}
	set, err := cfg.Build(capture.Target{Hosts: capture.HostsOf(c.env), PIDs: c.pidsOf, Dir: c.dir, Origin: c.epoch})
	if err != nil {
		return nil, err
	}
	if err := set.Start(ctx); err != nil {
		return nil, fmt.Errorf("start probes: %w", err)
	}
	c.env.Cleanup.Add("probes", set.Stop) // Stop is idempotent: also runs when the cell fails midway
	return set.Stop, nil
}

// pidsOf gives the process sampler a service's current PIDs.
func (c *cellRun) pidsOf(name string) (func() []int, error) {
	p, ok := c.svcs[name].(services.Processes)
	if !ok {
		return nil, fmt.Errorf("service %s: no process list", name)
	}
	return p.PIDs, nil
}
