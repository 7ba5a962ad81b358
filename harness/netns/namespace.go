package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/faultlab/faultlab/harness"
	"golang.org/x/sys/unix"
)

// NetnsDir holds the bind mounts of named network namespaces, where `ip netns` looks for them.
const NetnsDir = "/var/run/netns"

// killTimeout bounds the wait for SIGKILLed processes to leave a namespace.
const killTimeout = 5 * time.Second

// namespace is a named network namespace the lab created: a bind mount of its nsfs file in NetnsDir.
type namespace struct {
	name string
	path string
	id   harness.NetnsID
	// lockFD holds a shared flock on the namespace while the run lives (router namespaces only); Clean
	// leaves a run whose lock is held alone. -1 when not held.
	lockFD int
}

// sharedNetnsDir makes NetnsDir a shared mount point, binding it onto itself first when it is not one, as
// `ip netns add` does. Otherwise the first `ip netns add` run while a lab lives (a user's, or a tool's)
// stacks that bind mount over the directory: the lab's namespace mounts end up hidden beneath it, and their
// files can no longer be removed (EBUSY) when the run ends.
func sharedNetnsDir() error {
	if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if !errors.Is(err, unix.EINVAL) { // EINVAL: not a mount point yet
		return err
	}
	if err := unix.Mount(NetnsDir, NetnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s onto itself: %w", NetnsDir, err)
	}
	return unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
}

// createNamespace creates the named namespace the way `ip netns add` does: an empty file in NetnsDir, a
// thread that unshares its network namespace and bind-mounts /proc/thread-self/ns/net onto the file, then
// goes back to the lab's namespace. Its teardown is registered on c as soon as the file exists. With a
// parent (a namespace's path), the thread unshares from inside it, so the new namespace takes the parent's
// net.ipv4.tcp_child_ehash_entries (read from the creating thread's namespace).
func createNamespace(c *harness.Cleanup, name, parent string) (*namespace, error) {
	if err := sharedNetnsDir(); err != nil {
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	ns := &namespace{name: name, path: filepath.Join(NetnsDir, name), lockFD: -1}
	f, err := os.OpenFile(ns.path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return nil, fmt.Errorf("create netns %s: %w", name, err) // nothing created: a name clash
	}
	f.Close()
	c.Add("netns "+name, ns.destroy)
	onThread := harness.OnLockedThread
	if parent != "" {
		onThread = func(fn func() error) error { return harness.DoIn(parent, fn) }
	}
	err = onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		if err := unix.Mount("/proc/thread-self/ns/net", ns.path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	if ns.id, err = harness.NetnsIDOf(ns.path); err != nil {
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	return ns, nil
}

// lock takes a shared flock on the namespace for the life of the run (released by destroy or by the lab
// process's death).
func (ns *namespace) lock() error {
	fd, err := unix.Open(ns.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("lock netns %s: %w", ns.name, err)
	}
	if err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		return fmt.Errorf("lock netns %s: %w", ns.name, err)
	}
	ns.lockFD = fd
	return nil
}

// destroy kills what still runs inside the namespace, removes its bind mount and file, and drops the run
// lock. Idempotent; "already gone" is not an error.
func (ns *namespace) destroy() error {
	var errs []error
	if ns.id != (harness.NetnsID{}) {
		ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
		_, err := killNetnsProcs(ctx, map[harness.NetnsID]bool{ns.id: true})
		cancel()
		errs = append(errs, err)
	}
	errs = append(errs, removeNamespaceFile(ns.path))
	if ns.lockFD >= 0 {
		unix.Close(ns.lockFD)
		ns.lockFD = -1
	}
	return errors.Join(errs...)
}

// removeNamespaceFile detaches the bind mount at path and removes the file, ignoring "already gone". The
// namespace itself is freed by the kernel once nothing else holds it; its links go with it.
func removeNamespaceFile(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// killNetnsProcs SIGKILLs every process whose network namespace is in ids (a process inside a lab namespace
// is the lab's by construction), then waits until none is left or ctx ends. It never signals the lab
// process itself (whose threads may be visiting a namespace) nor PID 1. Signals go through a pidfd taken
// before the namespace is checked, so a recycled PID is never hit. It returns the PIDs killed.
func killNetnsProcs(ctx context.Context, ids map[harness.NetnsID]bool) ([]int, error) {
	killed := map[int]bool{}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		pids, err := netnsProcs(ids)
		if err != nil {
			return sortedKeys(killed), err
		}
		if len(pids) == 0 {
			return sortedKeys(killed), nil
		}
		for _, pid := range pids {
			if killPidInNetns(pid, ids) {
				killed[pid] = true
			}
		}
		select {
		case <-ctx.Done():
			left, _ := netnsProcs(ids)
			if len(left) == 0 {
				return sortedKeys(killed), nil
			}
			return sortedKeys(killed), fmt.Errorf("kill processes in lab netns: pids %v still there: %w", left,
				ctx.Err())
		case <-t.C:
		}
	}
}

// netnsProcs lists the PIDs (other than the lab process and PID 1) whose namespace is in ids. Exited
// processes (zombies included: their namespace links are gone) do not count.
func netnsProcs(ids map[harness.NetnsID]bool) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid == 1 {
			continue
		}
		if inNetns(pid, ids) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func inNetns(pid int, ids map[harness.NetnsID]bool) bool {
	id, err := harness.NetnsIDOf("/proc/" + strconv.Itoa(pid) + "/ns/net")
	return err == nil && ids[id]
}

// killPidInNetns SIGKILLs pid if, once pinned by a pidfd, it is still in one of ids.
func killPidInNetns(pid int, ids map[harness.NetnsID]bool) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false // gone
	}
	defer unix.Close(fd)
	if !inNetns(pid, ids) {
		return false
	}
	return unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil
}

func sortedKeys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}
