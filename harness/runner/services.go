package runner

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/faults"
	"github.com/faultlab/faultlab/harness/services"
	"github.com/faultlab/faultlab/harness/spec"
)

// startServices starts backends before the proxies that point at them, and records their versions.
func (c *cellRun) startServices(ctx context.Context) error {
	for _, sv := range orderServices(c.cell.Scenario.Services) {
		h := c.env.Host(sv.Host).(harness.NetnsHost)
		addr := netip.AddrPortFrom(h.Addrs()[0], uint16(sv.Port))
		dir := filepath.Join(c.dir, sv.Name)
		svc, err := c.newService(h, dir, addr, sv)
		if err != nil {
			return fmt.Errorf("service %s: %w", sv.Name, err)
		}
		c.env.Cleanup.Add("stop "+sv.Name, func() error { return svc.Stop(context.Background()) })
		if err := svc.Start(ctx); err != nil {
			return fmt.Errorf("start %s: %w", sv.Name, err)
		}
		c.svcs[sv.Name], c.addr[sv.Name] = svc, addr
		if v, ok := svc.(services.Versioned); ok {
			c.info[sv.Kind+"_version"] = v.Version()
		}
	}
	return nil
}

func (c *cellRun) newService(h harness.NetnsHost, dir string, addr netip.AddrPort, sv spec.Service) (services.Service, error) {
	opts := map[string]string{}
	for k, v := range sv.Options {
		opts[k] = c.expand(sv.Host, v)
	}
	sv.Options = opts
	switch sv.Kind {
	case "mariadb":
		return services.NewMariaDB(h, dir, addr, sv.Options)
	case "nginx":
		return services.NewNginx(h, dir, addr, sv.Options)
	case "haproxy":
		var servers []netip.AddrPort
		for _, b := range sv.Backends {
			servers = append(servers, c.addr[b])
		}
		return services.NewHAProxy(h, dir, services.HAProxyConfig{Name: sv.Name, Bind: addr, Mode: sv.Mode,
			Servers: servers, Strategy: sv.Reload, Options: sv.Options})
	}
	return nil, fmt.Errorf("kind %s: %w (no driver on this backend yet)", sv.Kind, harness.ErrUnsupported)
}

// expand replaces {addr} in a service option with its host's primary lab address and {addrs} with all its
// addresses, comma-separated, so a scenario can say `sources: "{addrs}"` without knowing the addresses.
func (c *cellRun) expand(host, v string) string {
	if !strings.Contains(v, "{addr") {
		return v
	}
	var all []string
	for _, a := range c.env.Host(host).Addrs() {
		all = append(all, a.String())
	}
	v = strings.ReplaceAll(v, "{addrs}", strings.Join(all, ","))
	return strings.ReplaceAll(v, "{addr}", all[0])
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

// synDrop builds the syn-drop mitigation for the reloaded proxy when the cell asks for it.
func (c *cellRun) synDrop() (faults.Around, func(), error) {
	if !slices.Contains(c.cell.Mitigations, "syn-drop") {
		return nil, func() {}, nil
	}
	rl := c.cell.Scenario.Reload
	var sv spec.Service
	for _, s := range c.cell.Scenario.Services {
		if s.Name == rl.Service {
			sv = s
		}
	}
	h := c.env.Host(sv.Host).(harness.NetnsHost)
	sd, err := faults.NewSynDrop(h, harness.PrefixBase+c.r.ID, sv.Port, rl.SynDrop.Before, rl.SynDrop.After)
	if err != nil {
		return nil, nil, fmt.Errorf("syn-drop on %s: %w", sv.Host, err)
	}
	c.env.Cleanup.Add("syn-drop table", sd.Close)
	return sd, func() {
		if n, err := sd.Drops(); err == nil {
			c.notes = append(c.notes, fmt.Sprintf("syn-drop: %d SYNs dropped around reloads", n))
		}
	}, nil
}
