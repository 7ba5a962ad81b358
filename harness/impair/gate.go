package impair

import (
	"errors"
	"fmt"
	"sync"

	"github.com/faultlab/faultlab/harness"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Gate holds packets and lets them go in order: while it is shut, a rule in the input hook of a host's
// namespace queues the packets a match selects (e.g. SYNs to a proxy's port) to the userspace engine's
// NFQUEUE program (queue.go), which holds every one; when it opens, the rule goes and the held packets are
// accepted in arrival order. It is the userspace engine of the syn-hold mitigation (harness/faults), where a
// kernel without the plug qdisc cannot hold packets itself:
//
//	table ip <prefix>-gate {
//		counter queue_gate { }
//		chain input { type filter hook input priority filter;
//			<match> counter name "queue_gate" queue num N bypass   # while shut
//		}
//	}
//
// The program's lateness statistics (QueueStats.Late*) are then the time each packet was held. The queue
// is fail-open with bypass, like the delay engine's: a packet the program cannot take passes at once and
// counts as overflow.
type Gate struct {
	mu    sync.Mutex
	nsFD  int
	nft   *nftRules
	q     *queueProgram
	match []expr.Any
	shut  bool
	// counted is the rule's counter as last read; the table is gone after Close.
	counted uint64
	closed  bool
	stats   *QueueStats
}

// OpenGate creates the gate's table (family ip, an empty input chain) in h's namespace, never the root
// namespace, and starts the program on queue num (1 if 0). The gate starts open.
func OpenGate(h harness.NetnsHost, prefix string, num uint16, match []expr.Any) (g *Gate, err error) {
	if err := refuseRoot(h); err != nil {
		return nil, err
	}
	opts := Options{QueueNum: num}.withDefaults()
	g = &Gate{nsFD: -1, match: match}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("open gate on %s: %w", h.Name(), err), g.Close())
			g = nil
		}
	}()
	if g.nsFD, err = unix.Open(h.NetnsPath(), unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		return g, fmt.Errorf("open netns: %w", err)
	}
	if g.nft, err = openNFTHook(g.nsFD, prefix+"-gate", opts.QueueNum, "input", nftables.ChainHookInput); err != nil {
		return g, err
	}
	g.nft.ensureCounter("queue", "gate")
	if err := g.nft.conn.Flush(); err != nil {
		return g, fmt.Errorf("add counter: %w", err)
	}
	g.q, err = startQueue(h, queueConfig{num: opts.QueueNum, maxLen: opts.MaxQueueLen, sockBuf: opts.SocketBuffer,
		gated: true})
	return g, err
}

// Flavour is how the rule queues packets: "nft queue" or "xt NFQUEUE".
func (g *Gate) Flavour() string { return string(g.nft.flavour) }

// Shut holds every matching packet from now on until Open.
func (g *Gate) Shut() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("gate: closed")
	}
	if g.shut {
		return nil
	}
	g.q.holding.Store(true) // before the rule: no packet reaches the program while the gate is open
	rule := append(append([]expr.Any{}, g.match...),
		&expr.Objref{Type: unix.NFT_OBJECT_COUNTER, Name: counterName("queue", "gate")})
	g.nft.conn.AddRule(&nftables.Rule{Table: g.nft.table, Chain: g.nft.chain, Exprs: g.nft.queueTo(rule)})
	if err := g.nft.conn.Flush(); err != nil {
		g.q.holding.Store(false)
		return fmt.Errorf("gate: add queue rule: %w", err)
	}
	g.shut = true
	return nil
}

// Open removes the rule and releases the held packets, in arrival order. A packet queued just before the
// rule went reaches the program after the gate opened and passes at once.
func (g *Gate) Open() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open()
}

func (g *Gate) open() error {
	if !g.shut {
		return nil
	}
	g.nft.conn.FlushChain(g.nft.chain) // the chain holds the gate's rule only
	err := g.nft.conn.Flush()
	g.q.holding.Store(false)
	g.q.wake()
	g.shut = false
	if err != nil {
		return fmt.Errorf("gate: delete queue rule: %w", err)
	}
	return nil
}

// Stats are the program's counters (Queued: packets the rule queued); after Close, the last ones.
func (g *Gate) Stats() QueueStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stats != nil {
		return *g.stats
	}
	g.readCounter()
	return *g.q.stats(g.counted)
}

func (g *Gate) readCounter() {
	if c, err := g.nft.readCounters(); err == nil {
		g.counted = c[counterID{"queue", "gate"}]
	}
}

// Close opens the gate, deletes the table, stops the program (letting held packets go first) and keeps
// the last counters. Idempotent.
func (g *Gate) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	var errs []error
	if g.nft != nil {
		if g.q != nil {
			errs = append(errs, g.open())
		}
		g.readCounter()
		errs = append(errs, g.nft.close())
	}
	if g.q != nil {
		errs = append(errs, g.q.stop(drainTimeout))
		g.stats = g.q.stats(g.counted)
	}
	if g.nsFD >= 0 {
		unix.Close(g.nsFD)
	}
	return errors.Join(errs...)
}
