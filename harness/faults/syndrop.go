package faults

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// synDropCounter names the table's counter object. A named counter outlives the rule, which comes and
// goes with every reload, so it totals the SYNs dropped over the whole storm.
const synDropCounter = "syn_drops"

// SynDrop is the syn-drop mitigation: around each reload, new connections to the proxy's port are dropped
// at the proxy's input hook (SYNs only: established connections go on), so clients retransmit their SYN
// (after ~1 s) instead of meeting a closed accept queue. It lives in the table <prefix>-syndrop (family
// inet) of the host's namespace, never in the root namespace:
//
//	table inet <prefix>-syndrop {
//		counter syn_drops { }
//		chain input { type filter hook input priority filter; policy accept;
//			tcp dport <port> tcp flags & (syn | ack) == syn counter name "syn_drops" drop  # between Before and After
//		}
//	}
//
// (nft lists the flags match as `tcp flags syn / syn,ack`.)
type SynDrop struct {
	h             harness.NetnsHost
	port          int
	before, after time.Duration

	mu      sync.Mutex
	nsFd    int
	conn    *nftables.Conn
	table   *nftables.Table
	chain   *nftables.Chain
	active  bool
	closed  bool
	lastErr error
	drops   uint64 // last count read, kept after Close

	undrained atomic.Int64
}

var _ Around = (*SynDrop)(nil)

// NewSynDrop creates the table with its counter and an empty input chain (policy accept) in h's namespace.
// Before adds the drop rule and waits before; After waits after and removes it; Close deletes the table.
func NewSynDrop(h harness.NetnsHost, prefix string, port int, before, after time.Duration) (*SynDrop, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("syn-drop: port %d out of range", port)
	}
	if before < 0 || after < 0 {
		return nil, fmt.Errorf("syn-drop: negative window (before %s, after %s)", before, after)
	}
	if prefix == "" {
		return nil, errors.New("syn-drop: empty prefix")
	}
	id, err := harness.NetnsIDOf(h.NetnsPath())
	if err != nil {
		return nil, fmt.Errorf("syn-drop on %s: %w", h.Name(), err)
	}
	if root, err := harness.IsRootNetns(id); err != nil || root {
		return nil, errors.Join(fmt.Errorf("syn-drop on %s: %s is the root network namespace: refusing",
			h.Name(), h.NetnsPath()), err)
	}
	fd, err := unix.Open(h.NetnsPath(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("syn-drop on %s: open netns: %w", h.Name(), err)
	}
	s := &SynDrop{h: h, port: port, before: before, after: after, nsFd: fd}
	if s.conn, err = nftables.New(nftables.WithNetNSFd(fd)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("syn-drop on %s: nftables: %w", h.Name(), err)
	}
	accept := nftables.ChainPolicyAccept
	s.table = s.conn.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: prefix + "-syndrop"})
	s.conn.AddObj(&nftables.CounterObj{Table: s.table, Name: synDropCounter})
	s.chain = s.conn.AddChain(&nftables.Chain{Name: "input", Table: s.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	if err := s.conn.Flush(); err != nil {
		return nil, errors.Join(fmt.Errorf("syn-drop on %s: create table %s: %w", h.Name(), s.table.Name, err),
			s.Close())
	}
	return s, nil
}

// Table is the name of the nftables table.
func (s *SynDrop) Table() string { return s.table.Name }

// rule is `tcp dport <port> tcp flags & (syn|ack) == syn counter name "syn_drops" drop`.
func (s *SynDrop) rule() *nftables.Rule {
	return &nftables.Rule{Table: s.table, Chain: s.chain, Exprs: append(synMatch(s.port),
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: synDropCounter},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)}
}

// synMatch is `tcp dport <port> tcp flags & (syn|ack) == syn`: a connection's first SYN (and its
// retransmissions), not the SYN-ACK or anything of an established connection.
func synMatch(port int) []expr.Any {
	return []expr.Any{
		// meta l4proto tcp
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		// tcp dport <port>
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(uint16(port))},
		// tcp flags & (syn | ack) == syn
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{tcpSYN | tcpACK},
			Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{tcpSYN}},
	}
}

// TCP header flag bits (byte 13).
const (
	tcpSYN = 0x02
	tcpACK = 0x10
)

// Before adds the drop rule, then waits until the accept queues of the port's listeners are empty, for at
// most the before window: the point of dropping SYNs is that the old process drains its queue before it
// closes its listener, so nothing is left in the queue to be reset. A queue that did not drain in time is
// counted (Undrained) and the reload goes ahead.
func (s *SynDrop) Before(ctx context.Context) error {
	if err := s.add(); err != nil {
		return err
	}
	drained, err := waitDrained(ctx, s.h, s.port, s.before)
	if err != nil {
		return fmt.Errorf("syn-drop: %w", err)
	}
	if !drained {
		s.undrained.Add(1)
	}
	return nil
}

// waitDrained waits, for at most limit, until the accept queues of the port's listeners in h are empty;
// it reports whether they emptied.
func waitDrained(ctx context.Context, h harness.NetnsHost, port int, limit time.Duration) (bool, error) {
	deadline := time.Now().Add(limit)
	for {
		queued, err := acceptQueued(h, port)
		if err != nil {
			return false, err
		}
		if queued == 0 {
			return true, nil
		}
		if !time.Now().Before(deadline) {
			return false, nil
		}
		if err := sleep(ctx, drainPoll); err != nil {
			return false, err
		}
	}
}

// drainPoll is the interval between two looks at the accept queues.
const drainPoll = time.Millisecond

// acceptQueued is the number of connections waiting in the accept queues of the port's listeners in h.
func acceptQueued(h harness.NetnsHost, port int) (int, error) {
	n := 0
	err := h.Do(func() error {
		return harness.DiagTCP(1<<harness.TCPListen, func(d *harness.DiagSocket) {
			if int(d.Local.Port()) == port {
				n += int(d.RQueue)
			}
		})
	})
	if err != nil {
		return 0, fmt.Errorf("on %s: accept queues: %w", h.Name(), err)
	}
	return n, nil
}

// Undrained is the number of reloads that started with connections still queued (the before window ran out).
func (s *SynDrop) Undrained() int { return int(s.undrained.Load()) }

func (s *SynDrop) add() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("syn-drop: closed")
	}
	if s.active {
		return nil
	}
	s.conn.AddRule(s.rule())
	if err := s.conn.Flush(); err != nil {
		return fmt.Errorf("syn-drop on %s: add rule: %w", s.h.Name(), err)
	}
	s.active = true
	return nil
}

// After waits the after window, then removes the drop rule (also when ctx ends during the wait).
func (s *SynDrop) After(ctx context.Context) error {
	_ = sleep(ctx, s.after)
	return s.remove()
}

func (s *SynDrop) remove() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.active {
		return nil
	}
	s.conn.FlushChain(s.chain) // the chain holds the drop rule only
	if err := s.conn.Flush(); err != nil {
		return fmt.Errorf("syn-drop on %s: delete rule: %w", s.h.Name(), err)
	}
	s.active = false
	return nil
}

// Drops is the number of SYNs dropped so far (the counter object's packets); after Close, the last count.
func (s *SynDrop) Drops() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.drops, s.lastErr
	}
	return s.readDrops()
}

func (s *SynDrop) readDrops() (uint64, error) {
	o, err := s.conn.GetObject(&nftables.CounterObj{Table: s.table, Name: synDropCounter})
	if err != nil {
		return s.drops, fmt.Errorf("syn-drop on %s: read counter: %w", s.h.Name(), err)
	}
	c, ok := o.(*nftables.CounterObj)
	if !ok {
		return s.drops, fmt.Errorf("syn-drop on %s: counter is %T", s.h.Name(), o)
	}
	s.drops = c.Packets
	return s.drops, nil
}

// Close reads the counter a last time and deletes the table (idempotent; a table already gone is fine).
func (s *SynDrop) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	defer unix.Close(s.nsFd)
	_, s.lastErr = s.readDrops()
	s.conn.DelTable(s.table)
	if err := s.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("syn-drop on %s: delete table %s: %w", s.h.Name(), s.table.Name, err)
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
