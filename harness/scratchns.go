package harness

import (
	"context"
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// ScratchNetns is an anonymous network namespace held only by a file descriptor of the lab process, for
// checks that need a namespace of this kernel but no lab (the preflight reads and writes sysctls in one).
// It has no name and no bind mount, so nothing of it outlives Close or the process, even one killed with
// SIGKILL: `faultlab clean` never has anything of it to sweep. It is a NetnsHost, so the lab's own code
// (ApplySysctls, ReadSysctls) works in it.
type ScratchNetns struct {
	fd   int
	path string
}

var _ NetnsHost = (*ScratchNetns)(nil)

// NewScratchNetns creates the namespace on a locked thread (unshare, which takes root), keeps a descriptor
// of it and switches the thread back (OnLockedThread). Close it when done.
func NewScratchNetns() (*ScratchNetns, error) {
	fd := -1
	err := OnLockedThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("create a scratch network namespace: %w", err)
		}
		var err error
		if fd, err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return fmt.Errorf("open the scratch network namespace: %w", err)
		}
		return nil
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, err
	}
	return &ScratchNetns{fd: fd, path: fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), fd)}, nil
}

// Name is "scratch".
func (n *ScratchNetns) Name() string { return "scratch" }

// Addrs is empty: the namespace has only its loopback device, down.
func (n *ScratchNetns) Addrs() []netip.Addr { return nil }

// NetnsPath opens the namespace through the lab process's descriptor (/proc/PID/fd/N) while it is open.
func (n *ScratchNetns) NetnsPath() string { return n.path }

// Do runs fn on a fresh OS thread inside the namespace (see DoIn).
func (n *ScratchNetns) Do(fn func() error) error { return DoIn(n.path, fn) }

// Start refuses: a scratch namespace runs no process, which would keep it alive past Close.
func (n *ScratchNetns) Start(_ context.Context, spec ProcSpec) (*Process, error) {
	return nil, fmt.Errorf("start %s: a scratch namespace runs no process: %w", spec.Name, ErrUnsupported)
}

// Close drops the descriptor, and with it the namespace (idempotent).
func (n *ScratchNetns) Close() {
	if n.fd >= 0 {
		unix.Close(n.fd)
		n.fd = -1
	}
}

// KernelRelease is the running kernel's release (uname -r), as the sysctl errors name it.
func KernelRelease() string { return kernelRelease() }
