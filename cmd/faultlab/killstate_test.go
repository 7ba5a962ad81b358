package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/docker"
	"github.com/faultlab/faultlab/harness/netns"
	"github.com/moby/moby/client"
)

// labState is what of one run's lab exists: found by the run's prefix (namespace names, the containers'
// and networks' run label), by network namespace (every process inside the lab's namespaces) and by command
// line (every process naming the run's output directory: the daemons' configs live there).
type labState struct {
	namespaces []string          // /var/run/netns/<prefix>-*
	locks      []string          // the netns run's lock file, /run/faultlab/<prefix>.lock
	containers []string          // containers labelled faultlab.run=<prefix>
	networks   []string          // networks labelled faultlab.run=<prefix>
	netns      []harness.NetnsID // the namespaces' and running containers' network namespaces
	pids       []int             // live processes inside them, or naming the output directory
	errs       []string          // what could not be listed
}

func (s labState) empty() bool {
	return len(s.namespaces)+len(s.locks)+len(s.containers)+len(s.networks)+len(s.pids)+len(s.errs) == 0
}

func (s labState) String() string {
	if s.empty() {
		return "nothing"
	}
	var parts []string
	add := func(what string, v []string) {
		if len(v) > 0 {
			parts = append(parts, fmt.Sprintf("%d %s %v", len(v), what, v))
		}
	}
	add("namespaces", s.namespaces)
	add("run locks", s.locks)
	add("containers", s.containers)
	add("networks", s.networks)
	var procs []string
	for _, pid := range s.pids {
		procs = append(procs, strconv.Itoa(pid)+":"+procName(pid))
	}
	add("processes", procs)
	add("errors", s.errs)
	return strings.Join(parts, ", ")
}

// snapLab lists what of r's lab exists now.
func (k *killer) snapLab(r *labRun) labState {
	var s labState
	prefix := r.prefix()
	if prefix != "" {
		paths, _ := filepath.Glob(filepath.Join("/var/run/netns", prefix+"-*"))
		for _, p := range paths {
			s.namespaces = append(s.namespaces, filepath.Base(p))
			if id, err := harness.NetnsIDOf(p); err == nil { // a file not (yet) mounted has a tmpfs inode
				s.netns = append(s.netns, id)
			}
		}
		s.locks, _ = filepath.Glob(filepath.Join(netns.LockDir, prefix+".lock"))
		if k.backend == "docker" {
			s.dockerObjects(prefix)
		}
	}
	seen := map[int]bool{}
	for _, pid := range pidsInIDs(s.netns) {
		seen[pid] = true
		s.pids = append(s.pids, pid)
	}
	for _, pid := range procPIDs() {
		if !seen[pid] && procState(pid) == stateRunning && strings.Contains(cmdline(pid), r.out) {
			s.pids = append(s.pids, pid)
		}
	}
	return s
}

// dockerObjects adds the containers and networks labelled with prefix, and the running containers' network
// namespaces.
func (s *labState) dockerObjects(prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(client.FromEnv)
	if err != nil {
		s.errs = append(s.errs, err.Error())
		return
	}
	defer c.Close()
	f := client.Filters{}.Add("label", docker.LabelRun+"="+prefix)
	ctrs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		s.errs = append(s.errs, err.Error())
		return
	}
	for _, ctr := range ctrs.Items {
		s.containers = append(s.containers, strings.TrimPrefix(strings.Join(ctr.Names, ","), "/")+" ("+
			string(ctr.State)+")")
		ins, err := c.ContainerInspect(ctx, ctr.ID, client.ContainerInspectOptions{})
		if err != nil || ins.Container.State == nil || ins.Container.State.Pid <= 0 {
			continue
		}
		if id, err := harness.NetnsIDOf(fmt.Sprintf("/proc/%d/ns/net", ins.Container.State.Pid)); err == nil {
			s.netns = append(s.netns, id)
		}
	}
	nets, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		s.errs = append(s.errs, err.Error())
		return
	}
	for _, n := range nets.Items {
		s.networks = append(s.networks, n.Name)
	}
}

// procPIDs lists the PIDs in /proc.
func procPIDs() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cmdline is pid's command line, arguments separated by spaces ("" when gone).
func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// procName is pid's command name.
func procName(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// A process's state, as far as leftovers go.
const (
	stateGone    = iota // no such process, or a zombie (its parent, or init, reaps it)
	stateExiting        // killed: in the kernel's exit path (PF_EXITING), closing its files and sockets
	stateRunning
)

// pfExiting is the kernel's PF_EXITING task flag (the 9th field of /proc/<pid>/stat).
const pfExiting = 0x4

// exitTimeout bounds the wait for a killed process to finish exiting.
const exitTimeout = 10 * time.Second

// procState reads pid's state from /proc/<pid>/stat.
func procState(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stateGone
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stateRunning
	}
	f := strings.Fields(s[i+1:]) // state, ppid, pgrp, session, tty, tpgid, flags, ...
	if len(f) < 7 || f[0] == "Z" || f[0] == "X" {
		return stateGone
	}
	if flags, err := strconv.ParseUint(f[6], 10, 64); err == nil && flags&pfExiting != 0 {
		return stateExiting
	}
	return stateRunning
}

// checkGone checks, after `faultlab clean`, that none of pids (the lab's processes before it) runs. Clean waits
// until the processes it SIGKILLed have left their namespaces; one may still be in the kernel's exit path then,
// closing its sockets (measured: 3-17 ms more for a haproxy): that one must be gone within exitTimeout.
func checkGone(t *testing.T, pids []int, what string) {
	t.Helper()
	for _, pid := range pids {
		switch procState(pid) {
		case stateRunning:
			t.Errorf("after clean, process %d (%s) of %s still runs", pid, cmdline(pid), what)
		case stateExiting:
			took, gone := waitExited(pid, exitTimeout)
			if !gone {
				t.Errorf("after clean, process %d of %s still exiting after %v", pid, what, exitTimeout)
				continue
			}
			t.Logf("after clean, process %d of %s was still exiting: gone %v later", pid, what,
				took.Round(time.Millisecond))
		}
	}
}

// waitExited waits up to limit for pid to be gone and says how long that took.
func waitExited(pid int, limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	for procState(pid) != stateGone {
		if time.Since(start) > limit {
			return time.Since(start), false
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start), true
}

// alive reports whether pid exists and is not a zombie (a killed process whose parent, the killed faultlab, is
// gone waits as a zombie until init reaps it).
func alive(pid int) bool { return procState(pid) != stateGone }

// pidsIn lists the processes whose network namespace is one of nsPaths.
func pidsIn(t *testing.T, nsPaths []string) []int {
	t.Helper()
	var ids []harness.NetnsID
	for _, p := range nsPaths {
		if id, err := harness.NetnsIDOf(p); err == nil {
			ids = append(ids, id)
		}
	}
	return pidsInIDs(ids)
}

// pidsInIDs lists the live processes whose network namespace is one of ids.
func pidsInIDs(ids []harness.NetnsID) []int {
	if len(ids) == 0 {
		return nil
	}
	want := map[harness.NetnsID]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var pids []int
	for _, pid := range procPIDs() {
		if id, err := harness.NetnsIDOf(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && want[id] && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
