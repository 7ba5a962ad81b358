package netns

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/faultlab/faultlab/harness"
)

// stopGrace is how long a process started in a host gets between SIGTERM and SIGKILL at teardown.
const stopGrace = 2 * time.Second

// Host is a lab host (or the router) backed by a named network namespace.
type Host struct {
	name    string
	addrs   []netip.Addr
	path    string
	dir     string
	cleanup *harness.Cleanup
}

var _ harness.NetnsHost = (*Host)(nil)

// Name is the host's name in the topology ("router" for the router).
func (h *Host) Name() string { return h.name }

// Addrs are the host's lab addresses on eth0, primary first (the router's are its per-link gateways, in
// topology order).
func (h *Host) Addrs() []netip.Addr { return slices.Clone(h.addrs) }

// NetnsPath is the namespace's bind mount, /var/run/netns/<prefix>-<name>.
func (h *Host) NetnsPath() string { return h.path }

// Do runs fn on a fresh OS thread inside the host's network namespace (see harness.DoIn).
func (h *Host) Do(fn func() error) error { return harness.DoIn(h.path, fn) }

// Start starts a supervised process inside the host's namespace (forked from a thread switched into it).
// Its log goes to spec.LogDir, by default the environment's directory. The process is stopped (SIGTERM,
// then SIGKILL to its group after 2 s) when the environment closes.
func (h *Host) Start(ctx context.Context, spec harness.ProcSpec) (*harness.Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start %s on %s: %w", spec.Name, h.name, err)
	}
	if spec.LogDir == "" {
		spec.LogDir = h.dir
	}
	p, err := harness.StartProcess(h.Do, spec)
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", h.name, err)
	}
	h.cleanup.Add(fmt.Sprintf("stop %s (pid %d) on %s", p.Name, p.PID, h.name), func() error {
		return p.Stop(stopGrace)
	})
	return p, nil
}
