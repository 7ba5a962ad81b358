package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/docker"
	"github.com/faultlab/faultlab/harness/netns"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// labHost is a host of a running lab, on either backend.
type labHost struct {
	Run       string    // run prefix, fl-<id>
	Host      string    // the host's name in the topology ("router" for the router)
	Backend   string    // netns | docker
	Created   time.Time // when its namespace or container was created
	Netns     string    // the network namespace's path (docker: set by resolveContainer)
	Container string    // docker: the container's ID
}

func (h labHost) String() string {
	return fmt.Sprintf("host %s of lab %s (%s)", h.Host, h.Run, h.Backend)
}

// netnsLabHosts lists the hosts of the netns labs: the fl-* namespaces in /var/run/netns.
func netnsLabHosts() ([]labHost, error) {
	runs, err := netns.List()
	if err != nil {
		return nil, err
	}
	return netnsHostsOf(runs, nsCreated), nil
}

// netnsHostsOf turns the namespaces of runs (<prefix>-<host>) into hosts; created says when a namespace
// file was made.
func netnsHostsOf(runs []netns.Run, created func(path string) time.Time) []labHost {
	var hosts []labHost
	for _, r := range runs {
		for _, n := range r.Namespaces {
			name, ok := strings.CutPrefix(n, r.Prefix+"-")
			if !ok || name == "" {
				continue
			}
			path := filepath.Join(netns.NetnsDir, n)
			hosts = append(hosts, labHost{Run: r.Prefix, Host: name, Backend: "netns", Created: created(path),
				Netns: path})
		}
	}
	return hosts
}

// nsCreated is when a namespace was created: the modification time of its nsfs inode (through the bind
// mount), set when the lab created and mounted it.
func nsCreated(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// dockerLabHosts lists the hosts of the docker labs: running containers labelled with a run and a host
// (the labels harness/docker puts on every container, and `faultlab clean` sweeps by).
func dockerLabHosts(ctx context.Context) ([]labHost, error) {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	defer c.Close()
	list, err := c.ContainerList(ctx, client.ContainerListOptions{
		Filters: client.Filters{}.Add("label", docker.LabelRun)}) // running ones only (All is false)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return containerHosts(list.Items), nil
}

// containerHosts turns lab containers into hosts (Created to the second; resolveContainer refines it).
func containerHosts(items []container.Summary) []labHost {
	var hosts []labHost
	for _, ctr := range items {
		run, host := ctr.Labels[docker.LabelRun], ctr.Labels[docker.LabelHost]
		if !strings.HasPrefix(run, harness.PrefixBase) || len(run) == len(harness.PrefixBase) || host == "" ||
			(ctr.State != "" && ctr.State != container.StateRunning) {
			continue
		}
		hosts = append(hosts, labHost{Run: run, Host: host, Backend: "docker", Created: time.Unix(ctr.Created, 0),
			Container: ctr.ID})
	}
	return hosts
}

// resolveContainer inspects a docker host's container for its init PID, whose network namespace is the
// host's, and its exact creation time.
func resolveContainer(ctx context.Context, h *labHost) error {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer c.Close()
	ins, err := c.ContainerInspect(ctx, h.Container, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect container of %s: %w", h, err)
	}
	st := ins.Container.State
	if st == nil || !st.Running || st.Pid <= 0 {
		return fmt.Errorf("%s: container %.12s is not running", h, h.Container)
	}
	h.Netns = fmt.Sprintf("/proc/%d/ns/net", st.Pid)
	if t, err := time.Parse(time.RFC3339Nano, ins.Container.Created); err == nil {
		h.Created = t
	}
	return nil
}

// candidates are the hosts named host, of run when set (an id or an fl- prefix). None is an error that
// lists what runs.
func candidates(hosts []labHost, run, host string) ([]labHost, error) {
	run = runPrefix(run)
	var out []labHost
	inRun := false
	for _, h := range hosts {
		if run != "" && h.Run != run {
			continue
		}
		inRun = true
		if h.Host == host {
			out = append(out, h)
		}
	}
	switch {
	case len(out) > 0:
		return out, nil
	case len(hosts) == 0:
		return nil, fmt.Errorf("no lab is running (start one with faultlab up FILE)")
	case run == "":
		return nil, fmt.Errorf("no running lab has host %q; running labs: %s", host, describeLabs(hosts))
	case !inRun:
		return nil, fmt.Errorf("no running lab %s; running labs: %s", run, describeLabs(hosts))
	}
	return nil, fmt.Errorf("lab %s has no host %q: %s", run, host, describeLabs(hosts, run))
}

// newest is the most recently created of hosts (not empty); ties go to the first run in name order.
func newest(hosts []labHost) labHost {
	best := hosts[0]
	for _, h := range hosts[1:] {
		if h.Created.After(best.Created) || h.Created.Equal(best.Created) && h.Run < best.Run {
			best = h
		}
	}
	return best
}

// describeLabs lists the labs of hosts (only run's when given) with their hosts:
// "fl-abc (netns: client proxy router), fl-def (docker: ...)".
func describeLabs(hosts []labHost, only ...string) string {
	type lab struct{ run, backend string }
	byLab := map[lab][]string{}
	for _, h := range hosts {
		if len(only) > 0 && h.Run != only[0] {
			continue
		}
		k := lab{h.Run, h.Backend}
		byLab[k] = append(byLab[k], h.Host)
	}
	keys := make([]lab, 0, len(byLab))
	for k := range byLab {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].run < keys[j].run || keys[i].run == keys[j].run && keys[i].backend < keys[j].backend
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		names := byLab[k]
		sort.Strings(names)
		parts[i] = fmt.Sprintf("%s (%s: %s)", k.run, k.backend, strings.Join(names, " "))
	}
	return strings.Join(parts, ", ")
}
