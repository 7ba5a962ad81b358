package runner

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/services"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/results"
)

// startServices starts backends before the proxies that point at them, and records their versions. Each
// service comes from services.Registry by kind, through its one constructor.
func (c *cellRun) startServices(ctx context.Context) error {
	for _, sv := range orderServices(c.cell.Scenario.Services) {
		if err := c.startService(ctx, sv); err != nil {
			return fmt.Errorf("service %s: %w", sv.Name, err)
		}
	}
	return nil
}

func (c *cellRun) startService(ctx context.Context, sv spec.Service) error {
	e, err := services.Lookup(sv.Kind)
	if err != nil {
		return err
	}
	h := c.env.Host(sv.Host).(harness.NetnsHost)
	cfg := services.Config{Name: sv.Name, Addr: netip.AddrPortFrom(h.Addrs()[0], uint16(sv.Port)), Mode: sv.Mode,
		Strategy: sv.Reload, Options: map[string]string{}}
	for k, v := range sv.Options {
		cfg.Options[k] = harness.ExpandAddrs(v, h.Addrs())
	}
	for _, b := range sv.Backends {
		if m, ok := c.svcs[b].(services.Servers); ok {
			cfg.Servers = append(cfg.Servers, m.Servers()...)
		} else {
			cfg.Servers = append(cfg.Servers, c.addr[b])
		}
	}
	svc, err := e.New(h, filepath.Join(c.dir, sv.Name), cfg)
	if err != nil {
		return err
	}
	c.env.Cleanup.Add("stop "+sv.Name, func() error { return svc.Stop(context.Background()) })
	if err := svc.Start(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	c.svcs[sv.Name], c.addr[sv.Name] = svc, cfg.Addr
	meta := results.ServiceMeta{Name: sv.Name, Kind: sv.Kind}
	if v, ok := svc.(services.Versioned); ok {
		meta.Version = v.Version()
		c.setInfo(sv.Kind+"_version", meta.Version)
	}
	c.mu.Lock()
	c.meta.Services = append(c.meta.Services, meta)
	c.mu.Unlock()
	return nil
}

// orderServices puts every service after the backends it names (validation rules out cycles of unknown names;
// a service with unstarted backends is placed last).
func orderServices(svcs []spec.Service) []spec.Service {
	var out []spec.Service
	done := map[string]bool{}
	for len(out) < len(svcs) {
		progressed := false
		for _, sv := range svcs {
			if done[sv.Name] || !allDone(sv.Backends, done) {
				continue
			}
			out, done[sv.Name], progressed = append(out, sv), true, true
		}
		if !progressed { // a cycle: keep file order for the rest
			for _, sv := range svcs {
				if !done[sv.Name] {
					out, done[sv.Name] = append(out, sv), true
				}
			}
		}
	}
	return out
}

func allDone(names []string, done map[string]bool) bool {
	return !slices.ContainsFunc(names, func(n string) bool { return !done[n] })
}
