package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/docker"
	"github.com/faultlab/faultlab/harness/netns"
	"github.com/faultlab/faultlab/harness/runner"
	"github.com/faultlab/faultlab/harness/spec"
)

// cmdUp builds the lab of one cell, starts its services and waits for Ctrl-C, printing where everything is.
func cmdUp(ctx context.Context, args []string) error {
	f, _, r, err := newRunner("up", args)
	if err != nil {
		return err
	}
	cells := r.Cells()
	if len(cells) == 0 {
		return fmt.Errorf("up: no cell matches %q", f.cells)
	}
	lab, err := r.Up(ctx, cells[0])
	if err != nil {
		return err
	}
	defer lab.Env.Close()
	printLab(r, cells[0], lab)
	<-ctx.Done()
	fmt.Println("tearing down")
	return lab.Env.Close()
}

func printLab(r *runner.Runner, c spec.Cell, lab *runner.Lab) {
	fmt.Printf("lab %s up (scenario %s, cell %s); directory %s\n\nhosts:\n", r.ID, r.Scenario.Name, c.Name, lab.Dir)
	names := make([]string, 0, len(lab.Env.Hosts))
	for n := range lab.Env.Hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		h := lab.Env.Hosts[n]
		var addrs []string
		for _, a := range h.Addrs() {
			addrs = append(addrs, a.String())
		}
		path := ""
		if nh, ok := h.(harness.NetnsHost); ok {
			path = nh.NetnsPath()
		}
		fmt.Printf("  %-10s %-30s %s\n", n, strings.Join(addrs, ","), path)
	}
	fmt.Println("\nservices:")
	for _, sv := range c.Scenario.Services {
		fmt.Printf("  %-10s %-8s on %-8s %s   config in %s/%s/\n", sv.Name, sv.Kind, sv.Host, lab.Services[sv.Name],
			lab.Dir, sv.Name)
	}
	if len(c.Scenario.Services) > 0 {
		last := c.Scenario.Services[len(c.Scenario.Services)-1]
		fmt.Printf("\ntry:\n  %s exec --run %s %s -- curl -s http://%s/\n  %s exec --run %s %s -- ss -tan\n",
			os.Args[0], r.ID, c.Scenario.Workload.From, lab.Services[last.Name], os.Args[0], r.ID, last.Host)
	}
	fmt.Println("\nCtrl-C tears the lab down.")
}

// cmdClean removes what crashed runs left: lab namespaces and the processes inside them, and, when a Docker
// engine answers, containers and networks carrying the lab's label. Live runs are left alone.
func cmdClean(ctx context.Context) error {
	rep, err := netns.Clean(ctx)
	fmt.Printf("netns: removed %d namespaces and %d stale run locks, killed %d processes, left %d live runs alone\n",
		len(rep.Namespaces), len(rep.Locks), len(rep.Processes), len(rep.Skipped))
	if _, perr := docker.Ping(ctx); perr != nil {
		fmt.Println("docker: no engine answers; nothing to clean there")
		return err
	}
	drep, derr := docker.Clean(ctx)
	fmt.Printf("docker: removed %d containers and %d networks, killed %d processes\n", len(drep.Containers),
		len(drep.Networks), len(drep.Processes))
	return errors.Join(err, derr)
}

func cmdVersion() error {
	fmt.Printf("faultlab %s\n", runner.Version)
	return nil
}
