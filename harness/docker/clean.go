package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/faultlab/faultlab/harness"
	"github.com/moby/moby/client"
)

// killTimeout bounds the wait for killed processes to disappear.
const killTimeout = 5 * time.Second

// Report says what Clean removed.
type Report struct {
	Containers []string // container names removed
	Networks   []string // network names removed
	Processes  []int    // PIDs killed inside the containers' network namespaces
	Skipped    []string // prefixes of live runs left alone
}

// CleanOptions narrows Clean.
type CleanOptions struct {
	// Prefix limits the sweep to one run (fl-<id>); empty means every run.
	Prefix string
}

// Clean removes what crashed runs left: every container and network labelled faultlab.run=fl-*, after
// SIGKILLing the processes the lab started in the containers (found by network namespace inode: they
// are the lab's children, outside the containers' cgroups, and would outlive them). Runs whose lab
// process still lives (faultlab.owner) are skipped and reported. Nothing else is touched; running it
// twice is harmless.
func Clean(ctx context.Context) (Report, error) { return CleanWith(ctx, CleanOptions{}) }

// CleanWith is Clean limited by opts.
func CleanWith(ctx context.Context, opts CleanOptions) (Report, error) {
	var rep Report
	c, err := newClient()
	if err != nil {
		return rep, err
	}
	defer c.Close()
	errs := []error{cleanContainers(ctx, c, opts, &rep), cleanNetworks(ctx, c, opts, &rep)}
	sort.Strings(rep.Containers)
	sort.Ints(rep.Processes)
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("clean docker: %w", err)
	}
	return rep, nil
}

// labFilter lists objects carrying the run label (of one run when prefix is set).
func labFilter(prefix string) client.Filters {
	if prefix != "" {
		return client.Filters{}.Add("label", LabelRun+"="+prefix)
	}
	return client.Filters{}.Add("label", LabelRun)
}

// isLabRun reports whether a run label's value is a lab prefix.
func isLabRun(v string) bool {
	return strings.HasPrefix(v, harness.PrefixBase) && len(v) > len(harness.PrefixBase)
}

func cleanContainers(ctx context.Context, c *client.Client, opts CleanOptions, rep *Report) error {
	list, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: labFilter(opts.Prefix)})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var errs []error
	skipped := map[string]bool{}
	for _, ctr := range list.Items {
		run := ctr.Labels[LabelRun]
		if !isLabRun(run) {
			continue
		}
		if ownerAlive(ctr.Labels[LabelOwner]) {
			if !skipped[run] {
				skipped[run] = true
				rep.Skipped = append(rep.Skipped, run)
			}
			continue
		}
		name := strings.TrimPrefix(firstName(ctr.Names), "/")
		if ins, err := c.ContainerInspect(ctx, ctr.ID, client.ContainerInspectOptions{}); err == nil &&
			ins.Container.State != nil && ins.Container.State.Pid > 0 {
			killed, err := killNetnsProcs(ctx, ins.Container.State.Pid)
			rep.Processes = append(rep.Processes, killed...)
			if err != nil {
				errs = append(errs, fmt.Errorf("container %s: %w", name, err))
			}
		}
		_, err := c.ContainerRemove(ctx, ctr.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", name, err))
			continue
		}
		rep.Containers = append(rep.Containers, name)
	}
	return errors.Join(errs...)
}

// cleanNetworks removes labelled networks. The provider creates none (its links are veth pairs), but a
// network carrying the label is the lab's by definition, and a leftover one would block the next run's
// subnet ("Pool overlaps"). A network is left alone while a live run's container uses it.
func cleanNetworks(ctx context.Context, c *client.Client, opts CleanOptions, rep *Report) error {
	list, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: labFilter(opts.Prefix)})
	if err != nil {
		return fmt.Errorf("list networks: %w", err)
	}
	var errs []error
	for _, n := range list.Items {
		run := n.Labels[LabelRun]
		if !isLabRun(run) || containsString(rep.Skipped, run) {
			continue
		}
		if _, err := c.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil &&
			!cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
			continue
		}
		rep.Networks = append(rep.Networks, n.Name)
	}
	return errors.Join(errs...)
}

// killNetnsProcs SIGKILLs every process in the network namespace of pid (a container's init) except the
// container's own processes (docker removes those) and waits until they are gone.
func killNetnsProcs(ctx context.Context, initPID int) ([]int, error) {
	target, err := harness.NetnsIDOf(fmt.Sprintf("/proc/%d/ns/net", initPID))
	if err != nil {
		return nil, nil // the container is not running: nothing can be inside its namespace
	}
	if root, err := harness.IsRootNetns(target); err != nil || root {
		return nil, fmt.Errorf("container init %d is in the root network namespace: refusing to kill", initPID)
	}
	var killed []int
	for _, pid := range procPIDs() {
		if pid == initPID || ppid(pid) == initPID {
			continue
		}
		if id, err := harness.NetnsIDOf(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && id == target {
			if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
				killed = append(killed, pid)
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, killTimeout)
	defer cancel()
	for _, pid := range killed {
		for alive(pid) {
			select {
			case <-ctx.Done():
				return killed, fmt.Errorf("pid %d still alive after SIGKILL: %w", pid, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return killed, nil
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

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	st, err := procStat(pid)
	return err == nil && len(st) > 0 && st[0] != "Z" && st[0] != "X"
}

// ppid is pid's parent (0 when unknown).
func ppid(pid int) int {
	st, err := procStat(pid)
	if err != nil || len(st) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(st[1])
	return n
}

// procStat returns the fields of /proc/<pid>/stat after the command name: state, ppid, ...
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
}

// ownerLabel identifies a lab process: its PID and start time (field 22 of /proc/<pid>/stat), so a
// reused PID is not taken for the owner.
func ownerLabel(pid int) (string, error) {
	st, err := procStat(pid)
	if err != nil || len(st) < 20 {
		return "", fmt.Errorf("read start time of pid %d: %w", pid, err)
	}
	return fmt.Sprintf("%d:%s", pid, st[19]), nil
}

// ownerAlive reports whether the process an owner label names still runs.
func ownerAlive(label string) bool {
	pidStr, _, ok := strings.Cut(label, ":")
	pid, err := strconv.Atoi(pidStr)
	if !ok || err != nil || pid <= 0 {
		return false
	}
	now, err := ownerLabel(pid)
	return err == nil && now == label && alive(pid)
}

func firstName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// isNotFound reports whether err says the object is already gone.
func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }
