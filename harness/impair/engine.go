package impair

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/faultlab/faultlab/harness"
)

// Link names a lab link by its host: the veth between that host and the router.
type Link string

// Engine impairs the router's links. Every method is safe for concurrent use; Close is idempotent and
// best effort, and leaves nothing in the router namespace.
type Engine interface {
	Name() string
	// Apply replaces the impairment of one direction of a link (a zero Impairment clears it).
	Apply(ctx context.Context, link Link, dir Direction, imp Impairment) error
	// Clear removes the impairment of one direction of a link.
	Clear(ctx context.Context, link Link, dir Direction) error
	Close() error
	// Stats are the engine's parameters and counters so far.
	Stats() EngineStats
}

// Target is where an engine works: the router namespace of one lab and its links.
type Target struct {
	// Prefix is the run's prefix; the engine's nft table is <prefix>-impair.
	Prefix string
	Router harness.NetnsHost
	// Links maps a host name to the router-side link name (harness.Env.RouterLink).
	Links map[string]string
}

// TargetOf is the target of a built lab.
func TargetOf(env *harness.Env) Target {
	return Target{Prefix: env.Prefix, Router: env.Router, Links: env.RouterLink}
}

func (t Target) link(l Link) (string, error) {
	name, ok := t.Links[string(l)]
	if !ok {
		return "", fmt.Errorf("link %q: no such host in the lab", l)
	}
	return name, nil
}

// Options tune the userspace engine; zero values take the defaults.
type Options struct {
	// QueueNum is the NFQUEUE number in the router namespace (default 1).
	QueueNum uint16
	// MaxQueueLen is the kernel's limit on packets held at once (default 16384); beyond it packets pass
	// undelayed and count as overflow.
	MaxQueueLen uint32
	// SocketBuffer is the queue socket's receive buffer in bytes (default 1 MiB, about 4,000 packets:
	// beyond it packets pass undelayed and count as overflow, rather than waiting in the socket).
	SocketBuffer int
}

func (o Options) withDefaults() Options {
	if o.QueueNum == 0 {
		o.QueueNum = 1
	}
	if o.MaxQueueLen == 0 {
		o.MaxQueueLen = 16384
	}
	if o.SocketBuffer == 0 {
		o.SocketBuffer = 1 << 20
	}
	return o
}

// EngineStats are an engine's parameters and counters, JSON-serialisable for results.json.
type EngineStats struct {
	Engine string `json:"engine"`
	// Params describe how the engine impairs, e.g. {"delay": "NFQUEUE 1 (xt NFQUEUE, bypass) ..."}.
	Params map[string]string `json:"params,omitempty"`
	// Queue is the userspace engine's delay program (absent for netem).
	Queue *QueueStats `json:"queue,omitempty"`
	// LossDropped counts packets dropped by the userspace engine's loss rules, per "host/direction".
	LossDropped map[string]uint64 `json:"loss_dropped,omitempty"`
}

// QueueStats are the NFQUEUE program's counters. Overflow is what exceeded the engine's capacity: packets
// that the queue rules matched but that skipped the program (the kernel queue was full, or the socket
// overran, and fail-open let them through undelayed).
type QueueStats struct {
	Queued   uint64 `json:"queued"`   // packets matched by the queue rules (nft counters)
	Seen     uint64 `json:"seen"`     // packets the program received
	Released uint64 `json:"released"` // accepted after their delay
	Dropped  uint64 `json:"dropped"`  // dropped by a Gilbert-Elliott model
	Pending  int    `json:"pending"`  // held now
	Overflow uint64 `json:"overflow"` // Queued - Seen, minus packets in flight to the program
	IDGaps   uint64 `json:"id_gaps"`  // packet ids the kernel assigned but never delivered
	ENOBUFS  uint64 `json:"enobufs"`  // socket overruns reported to the program
	// Stale counts verdicts the kernel refused with ENOENT: it no longer held a packet with that id.
	Stale     uint64 `json:"stale_verdicts"`
	KernelIDs uint64 `json:"kernel_id"` // the queue's id sequence (/proc/net/netfilter/nfnetlink_queue)
	// KernelDropped and UserDropped are the kernel's counters (non-zero only without fail-open).
	KernelDropped uint64 `json:"kernel_dropped"`
	UserDropped   uint64 `json:"user_dropped"`
	MaxPending    int    `json:"max_pending"`
	// Lateness is release time minus due time, over released packets.
	LateP50  time.Duration `json:"late_p50_ns"`
	LateP99  time.Duration `json:"late_p99_ns"`
	LateMax  time.Duration `json:"late_max_ns"`
	LateMean time.Duration `json:"late_mean_ns"`
	// RecvLag is how long packets waited for the program to read them (from the kernel's timestamps,
	// which Timestamped packets carried; the due time counts from the kernel's time, so lag costs
	// accuracy only when it is long enough to pass the due time).
	RecvLagP50  time.Duration `json:"recv_lag_p50_ns"`
	RecvLagP99  time.Duration `json:"recv_lag_p99_ns"`
	Timestamped uint64        `json:"timestamped"`
}

// Overflowed reports whether the engine exceeded its capacity.
func (s EngineStats) Overflowed() bool {
	q := s.Queue
	return q != nil && (q.Overflow > 0 || q.IDGaps > 0 || q.KernelDropped > 0 || q.UserDropped > 0 || q.ENOBUFS > 0)
}

// ErrEngineUnavailable is returned (wrapped) when a scenario asks for an engine this machine lacks.
var ErrEngineUnavailable = errors.New("impair engine not available")

// New opens the named engine (netem or userspace; use Availability.Choose to resolve auto) on t.
func New(name string, t Target, opts Options) (Engine, error) {
	if t.Router == nil {
		return nil, fmt.Errorf("open impair engine %s: lab has no router", name)
	}
	if err := refuseRoot(t.Router); err != nil {
		return nil, fmt.Errorf("open impair engine %s: %w", name, err)
	}
	switch name {
	case EngineNetem:
		return newNetem(t)
	case EngineUserspace:
		return newUserspace(t, opts.withDefaults())
	}
	return nil, fmt.Errorf("open impair engine: %q is not netem or userspace", name)
}

// refuseRoot fails when the router is the root network namespace (or the lab process's own).
func refuseRoot(router harness.NetnsHost) error {
	id, err := harness.NetnsIDOf(router.NetnsPath())
	if err != nil {
		return err
	}
	root, err := harness.IsRootNetns(id)
	if err != nil {
		return err
	}
	if root {
		return fmt.Errorf("router %s (%s) is the root network namespace: refusing", router.Name(), id)
	}
	return nil
}

func pathKey(l Link, d Direction) string { return string(l) + "/" + string(d) }

// splitKey undoes pathKey.
func splitKey(key string) (string, Direction) {
	i := strings.LastIndexByte(key, '/')
	return key[:i], Direction(key[i+1:])
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
