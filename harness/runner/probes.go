package runner

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/faultlab/faultlab/capture"
	"github.com/faultlab/faultlab/harness/services"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/results"
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
// finalises their files.
func (c *cellRun) startProbes(ctx context.Context, epoch time.Time) (stop func() error, err error) {
	cfg := probeConfig(c.cell.Scenario.Probes)
	if len(cfg.Links)+len(cfg.States)+len(cfg.Procs) == 0 {
		return func() error { return nil }, nil
	}
	set, err := cfg.Build(capture.Target{Hosts: capture.HostsOf(c.env), PIDs: c.pidsOf, Dir: c.dir, Origin: epoch})
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
	switch s := c.svcs[name].(type) {
	case *services.HAProxy:
		return s.PIDs, nil
	case *services.Nginx:
		return func() []int { return []int{s.PID()} }, nil
	case *services.MariaDB:
		return func() []int { return []int{s.PID()} }, nil
	}
	return nil, fmt.Errorf("service %s: no process list", name)
}

// roles maps every lab address to the role of its host: the workload's host is the client, hosts running a
// proxy are proxies, hosts running other services are backends.
func (c *cellRun) roles() map[netip.Addr]capture.Role {
	s := &c.cell.Scenario
	role := map[string]capture.Role{s.Workload.From: capture.RoleClient}
	for _, sv := range s.Services {
		if sv.IsProxy() {
			role[sv.Host] = capture.RoleProxy
		} else if role[sv.Host] == "" {
			role[sv.Host] = capture.RoleBackend
		}
	}
	out := map[netip.Addr]capture.Role{}
	for name, h := range c.env.Hosts {
		for _, a := range h.Addrs() {
			if r, ok := role[name]; ok {
				out[a] = r
			}
		}
	}
	return out
}

// analyseCaptures analyses the cell's pcaps and attributes the client's resets to the RSTs seen on the wire.
func (c *cellRun) analyseCaptures(epoch time.Time) {
	p := c.cell.Scenario.Probes
	if p == nil || len(p.Capture) == 0 {
		return
	}
	resets := 0
	for i := range c.records {
		if o := c.records[i].Outcome; o == results.OutcomeReset || o == results.OutcomeRefused {
			resets++
		}
	}
	c.probes = map[string]any{}
	for _, l := range p.Capture {
		name := l.Host + "-" + l.Iface
		res, err := capture.AnalyseFile(filepath.Join(c.dir, name+".pcap"), capture.Options{Roles: c.roles(),
			Origin: epoch, OnConn: func(cn capture.Conn) { c.noteServerConn(l.Host, epoch, cn) }})
		if err != nil {
			c.notes = append(c.notes, fmt.Sprintf("capture %s: analysis failed: %v", name, err))
			continue
		}
		c.probes["capture/"+name] = captureSummary(res)
		tot := res.Total(nil)
		toClient := res.Total(func(d capture.Direction) bool { return d.DstRole == capture.RoleClient })
		c.notes = append(c.notes, fmt.Sprintf("capture %s: %d packets; %d RSTs toward the client (client saw %d "+
			"resets/refusals); RSTs sent by proxy %d, client %d, backend %d; SYN retransmissions %d; zero-window "+
			"advertisements %d", name, res.TCP, toClient.RST, resets, res.RSTBy[capture.RoleProxy],
			res.RSTBy[capture.RoleClient], res.RSTBy[capture.RoleBackend], tot.SYNRetrans, tot.ZeroWindow))
	}
}

// captureSummary is the part of an analysis that goes into results.json: totals, RSTs by sender and the
// per-connection summary (the per-window series stay in the pcap, re-analysable at will).
func captureSummary(r *capture.Result) map[string]any {
	toClient := func(d capture.Direction) bool { return d.DstRole == capture.RoleClient }
	return map[string]any{"packets": r.TCP, "dropped_or_malformed": r.Malformed, "totals": r.Total(nil),
		"rst_by": r.RSTBy, "conns": r.Conns, "to_client": r.Total(toClient)}
}
