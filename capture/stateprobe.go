package capture

import (
	"context"
	"errors"
	"fmt"

	"github.com/faultlab/faultlab/harness"
)

// StateProbe samples a host's socket states into a JSON-lines file.
type StateProbe struct {
	host   harness.NetnsHost
	cfg    StateSampler
	path   string
	states *SocketStates
	s      *series
}

var _ Probe = (*StateProbe)(nil)

// NewStateProbe prepares a state sampler of h writing to path.
func NewStateProbe(h harness.NetnsHost, cfg StateSampler, path string) *StateProbe {
	if cfg.Interval == 0 {
		cfg.Interval = defaultInterval
	}
	return &StateProbe{host: h, cfg: cfg, path: path}
}

// Path is the series file's path.
func (p *StateProbe) Path() string { return p.path }

// Start opens the sampler inside the namespace, takes a first sample and keeps sampling every interval.
// A failing sample is written with its error and reported by Stop; sampling goes on.
func (p *StateProbe) Start(ctx context.Context) error {
	var err error
	if p.states, err = OpenSocketStates(p.host, p.cfg); err != nil {
		return err
	}
	p.s, err = startSeries(ctx, p.path, p.cfg.Interval, func() (any, error) {
		s, err := p.states.Sample()
		return s, err
	})
	if err != nil {
		p.states.Close()
		return fmt.Errorf("state sampler %s: %w", p.host.Name(), err)
	}
	return nil
}

// Stop ends sampling and closes the file and sockets (idempotent).
func (p *StateProbe) Stop() error {
	if p.s == nil {
		return nil
	}
	err := errors.Join(p.s.stop(), p.states.Close())
	if err != nil {
		return fmt.Errorf("state sampler %s: %w", p.host.Name(), err)
	}
	return nil
}
