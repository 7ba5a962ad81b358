package capture

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/faultlab/faultlab/harness"
)

// Target is what a Config's probes are built against.
type Target struct {
	// Hosts by name; HostsOf(env) gives an environment's hosts and its router.
	Hosts map[string]harness.NetnsHost
	// PIDs returns the function giving a service's current PIDs (needed only for process samplers).
	PIDs func(service string) (func() []int, error)
	// Dir receives the files: <host>-<iface>.pcap (+ .capture.json), states-<host>.jsonl, procs-<service>.jsonl.
	Dir string
	// Origin is time zero of the samplers' series (the cell's start); zero means each sampler's start.
	Origin time.Time
}

// HostsOf returns an environment's hosts that can be entered, and its router under "router".
func HostsOf(env *harness.Env) map[string]harness.NetnsHost {
	out := map[string]harness.NetnsHost{}
	for name, h := range env.Hosts {
		if nh, ok := h.(harness.NetnsHost); ok {
			out[name] = nh
		}
	}
	if env.Router != nil {
		out[env.Router.Name()] = env.Router
	}
	return out
}

// Set is a group of probes started and stopped together; it is itself a Probe.
type Set struct {
	probes  []Probe
	started []Probe
}

var _ Probe = (*Set)(nil)

// Build validates c and builds its probes (nothing is started).
func (c Config) Build(t Target) (*Set, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("capture config: %w", err)
	}
	host := func(name string) (harness.NetnsHost, error) {
		h, ok := t.Hosts[name]
		if !ok {
			return nil, fmt.Errorf("capture config: no host %q", name)
		}
		return h, nil
	}
	s := &Set{}
	for _, l := range c.Links {
		h, err := host(l.Host)
		if err != nil {
			return nil, err
		}
		p, err := NewCapture(h, l, filepath.Join(t.Dir, l.Host+"-"+l.Iface+".pcap"))
		if err != nil {
			return nil, err
		}
		s.probes = append(s.probes, p)
	}
	for _, st := range c.States {
		h, err := host(st.Host)
		if err != nil {
			return nil, err
		}
		if st.Origin.IsZero() {
			st.Origin = t.Origin
		}
		s.probes = append(s.probes, NewStateProbe(h, st, filepath.Join(t.Dir, "states-"+st.Host+".jsonl")))
	}
	for _, ps := range c.Procs {
		if t.PIDs == nil {
			return nil, fmt.Errorf("capture config: process sampler for %s: no PID source", ps.Service)
		}
		pids, err := t.PIDs(ps.Service)
		if err != nil {
			return nil, fmt.Errorf("capture config: process sampler for %s: %w", ps.Service, err)
		}
		if ps.Origin.IsZero() {
			ps.Origin = t.Origin
		}
		s.probes = append(s.probes, NewProcProbe(ps, pids, filepath.Join(t.Dir, "procs-"+ps.Service+".jsonl")))
	}
	return s, nil
}

// NewSet groups probes.
func NewSet(probes ...Probe) *Set { return &Set{probes: probes} }

// Probes returns the set's probes in start order.
func (s *Set) Probes() []Probe { return s.probes }

// Start starts every probe in order; if one fails, those already started are stopped.
func (s *Set) Start(ctx context.Context) error {
	for _, p := range s.probes {
		if err := p.Start(ctx); err != nil {
			return errors.Join(err, s.Stop())
		}
		s.started = append(s.started, p)
	}
	return nil
}

// Stop stops the started probes in reverse order, best effort.
func (s *Set) Stop() error {
	var errs []error
	for i := len(s.started) - 1; i >= 0; i-- {
		errs = append(errs, s.started[i].Stop())
	}
	s.started = nil
	return errors.Join(errs...)
}
