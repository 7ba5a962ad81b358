// Package harness is the lab's vocabulary: hosts, providers, the environment of one cell, processes started
// inside hosts, sysctls and the cleanup stack. Providers (harness/netns, later harness/docker) implement it.
package harness

import (
	"context"
	"errors"
	"net/netip"
)

// Sentinel errors callers branch on.
var (
	ErrNotPrivileged = errors.New("not privileged (run as root)")
	ErrUnsupported   = errors.New("unsupported on this machine")
)

// PrefixBase starts every name the lab creates (namespaces, nft tables, containers, temp dirs), followed by
// the run's short id, so `faultlab clean` can find a crashed run's leftovers and touch nothing else.
const PrefixBase = "fl-"

// Host is one machine of the lab: a network namespace, later a container.
type Host interface {
	Name() string
	// Addrs are the host's lab addresses; the first is its primary address.
	Addrs() []netip.Addr
	// Start starts a long-running process inside the host. The process is supervised: it is reaped when it
	// exits and stopped by PID at teardown.
	Start(ctx context.Context, spec ProcSpec) (*Process, error)
}

// NetnsHost is a host backed by a Linux network namespace that the lab process can enter. Both providers
// implement it (a container's namespace is entered from its PID), so sysctls, impairments, captures and
// the load generator's sockets work the same way on either.
type NetnsHost interface {
	Host
	// Do runs fn on a fresh OS thread switched into the host's network namespace.
	Do(fn func() error) error
	// NetnsPath is a path that opens the namespace (e.g. /var/run/netns/NAME or /proc/PID/ns/net).
	NetnsPath() string
}

// ImageHost is a host with a filesystem of its own (a container): it runs its image's binaries, so version
// queries and config checks must run there too, not with the lab's binaries.
type ImageHost interface {
	NetnsHost
	// Run runs a short command inside the host and returns its combined output; argv[0] is looked up in
	// the image's PATH. A failure is an *ExecError carrying the output.
	Run(ctx context.Context, argv ...string) (string, error)
}

// HostSpec describes a host to build.
type HostSpec struct {
	Name string
	// NumAddrs is how many lab addresses the host gets (at least 1); several are used for several source IPs.
	NumAddrs int
	// Sysctls are applied inside the host's namespace before services start, then read back and verified.
	Sysctls map[string]string
}

// Topology is what a provider builds: hosts in a star around a router, every host reachable from every other.
type Topology struct {
	Hosts []HostSpec
}

// Provider builds environments.
type Provider interface {
	Name() string
	// Build creates the hosts. Everything created is registered on env's cleanup stack as it is created, so
	// a failed Build still tears down with env.Close.
	Build(ctx context.Context, prefix string, topo Topology, dir string) (*Env, error)
}

// Env is one built lab: the hosts of a cell, their router, and the stack that tears them down.
type Env struct {
	Prefix   string
	Dir      string // run directory of this cell: logs, configs, records
	Provider string
	Hosts    map[string]Host
	// Router is the namespace that forwards between hosts; impairments sit on its links.
	Router NetnsHost
	// RouterLink maps a host name to the router-side interface name of that host's link.
	RouterLink map[string]string
	Cleanup    *Cleanup
}

// Host returns the named host or panics: scenario validation guarantees the names.
func (e *Env) Host(name string) Host {
	h, ok := e.Hosts[name]
	if !ok {
		panic("harness: no host " + name)
	}
	return h
}

// Close tears the environment down (idempotent).
func (e *Env) Close() error { return e.Cleanup.Run() }
