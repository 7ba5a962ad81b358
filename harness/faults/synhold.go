package faults

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/impair"
)

// Engines of the syn-hold mitigation.
const (
	// HoldEngineNFQueue holds SYNs in the userspace engine's NFQUEUE program (impair.Gate).
	HoldEngineNFQueue = "nfqueue"
	// HoldEnginePlug holds them in a plug qdisc (sch_plug), as the production technique does (impair.PlugGate).
	HoldEnginePlug = "plug"
	// HoldEngineAuto is the plug qdisc where the kernel has it, the NFQUEUE program otherwise.
	HoldEngineAuto = ""
)

// holdGate is what an engine does: hold the SYNs from Shut until Open, then let them go in order.
type holdGate interface {
	Shut() error
	Open() error
	Close() error
}

// SynHold is the syn-hold mitigation: around each reload, new connections to the proxy's port are held,
// not dropped. Before the reload the SYNs to the port start being held and the accept queues drain (at most
// the before window); the reload runs; then, once the old process has closed its listener (at most the
// after window past the reload), the held SYNs are let through in arrival order, to the new listener
// only. Clients see a connect delayed by the hold, not a SYN retransmitted a second later.
//
// The hold needs a kernel that can hold packets and let them go: the plug qdisc (sch_plug) where the
// kernel has it, otherwise the lab's NFQUEUE program (impair.Gate, an input-hook rule in the proxy's
// namespace while the hold lasts). The engine that ran is in Stats, and why the plug qdisc was not used.
type SynHold struct {
	h             harness.NetnsHost
	port          int
	before, after time.Duration
	gate          holdGate
	nfq           *impair.Gate     // the NFQUEUE engine, or nil
	plug          *impair.PlugGate // the plug engine, or nil
	plugMissing   string

	mu        sync.Mutex
	pre       []uint32 // the port's listeners before the reload under way
	shutAt    time.Time
	holds     []time.Duration
	undrained int
	unclosed  int
	closed    bool
}

var _ Around = (*SynHold)(nil)

// NewSynHold prepares the hold in h's namespace (never the root namespace) with engine (HoldEngineAuto,
// HoldEnginePlug or HoldEngineNFQueue): the plug engine is an impair.PlugGate for SYNs to port; the
// NFQUEUE engine an impair.Gate (table <prefix>-gate, NFQUEUE number 1). Auto takes the plug qdisc when
// the kernel has it and the plug gate builds, and says why not otherwise (Stats.PlugUnavailable).
func NewSynHold(h harness.NetnsHost, prefix string, port int, before, after time.Duration, engine string) (*SynHold, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("syn-hold: port %d out of range", port)
	}
	if before < 0 || after < 0 {
		return nil, fmt.Errorf("syn-hold: negative window (before %s, after %s)", before, after)
	}
	if prefix == "" {
		return nil, errors.New("syn-hold: empty prefix")
	}
	if engine != HoldEngineAuto && engine != HoldEnginePlug && engine != HoldEngineNFQueue {
		return nil, fmt.Errorf("syn-hold: engine %q: want %q, %q or auto", engine, HoldEnginePlug, HoldEngineNFQueue)
	}
	s := &SynHold{h: h, port: port, before: before, after: after}
	if engine != HoldEngineNFQueue {
		err := impair.DetectPlug(h)
		if err == nil {
			s.plug, err = impair.OpenPlugGate(h, port)
		}
		switch {
		case err == nil:
			s.gate = s.plug
			return s, nil
		case engine == HoldEnginePlug:
			return nil, fmt.Errorf("syn-hold on %s: %w", h.Name(), err)
		}
		s.plugMissing = err.Error()
	} else {
		s.plugMissing = "the NFQUEUE engine was asked for"
	}
	g, err := impair.OpenGate(h, prefix, 0, synMatch(port))
	if err != nil {
		return nil, fmt.Errorf("syn-hold on %s: %w", h.Name(), err)
	}
	s.nfq, s.gate = g, g
	return s, nil
}

// Engine is the engine holding the SYNs.
func (s *SynHold) Engine() string {
	if s.plug != nil {
		return HoldEnginePlug
	}
	return HoldEngineNFQueue
}

// Before notes the port's listeners, starts holding SYNs to the port and waits (at most the before
// window) for the listeners' accept queues to drain, so the old process has nothing queued when it closes.
func (s *SynHold) Before(ctx context.Context) error {
	pre, err := listenerInodes(s.h, s.port)
	if err != nil {
		return fmt.Errorf("syn-hold: %w", err)
	}
	if err := s.gate.Shut(); err != nil {
		return fmt.Errorf("syn-hold on %s: %w", s.h.Name(), err)
	}
	s.mu.Lock()
	s.pre, s.shutAt = pre, time.Now()
	s.mu.Unlock()
	drained, err := waitDrained(ctx, s.h, s.port, s.before)
	if err != nil {
		return errors.Join(fmt.Errorf("syn-hold: %w", err), s.gate.Open())
	}
	if !drained {
		s.mu.Lock()
		s.undrained++
		s.mu.Unlock()
	}
	return nil
}

// After waits until the listeners that the reload replaces have closed (at most the after window), then
// lets the held SYNs through. A reload that bound no new listener (the sockets were handed over: -x,
// master-worker) closes none, so the SYNs go at once.
func (s *SynHold) After(ctx context.Context) error {
	s.mu.Lock()
	pre := s.pre
	s.mu.Unlock()
	closed, werr := waitReplaced(ctx, s.h, s.port, pre, s.after)
	oerr := s.gate.Open()
	s.mu.Lock()
	if !s.shutAt.IsZero() {
		s.holds = append(s.holds, time.Since(s.shutAt))
	}
	if !closed {
		s.unclosed++
	}
	s.mu.Unlock()
	if werr != nil && !errors.Is(werr, context.Canceled) && !errors.Is(werr, context.DeadlineExceeded) {
		return errors.Join(fmt.Errorf("syn-hold: %w", werr), oerr)
	}
	if oerr != nil {
		return fmt.Errorf("syn-hold on %s: %w", s.h.Name(), oerr)
	}
	return nil
}

// waitReplaced waits, for at most limit, until a reload's replaced listeners are gone: if the port has a
// listener that was not among pre (the new process bound its own), until no listener of pre is left. It
// reports whether that happened (true at once when no new listener was bound).
func waitReplaced(ctx context.Context, h harness.NetnsHost, port int, pre []uint32, limit time.Duration) (bool, error) {
	deadline := time.Now().Add(limit)
	for {
		cur, err := listenerInodes(h, port)
		if err != nil {
			return false, err
		}
		fresh, old := false, false
		for _, ino := range cur {
			if slices.Contains(pre, ino) {
				old = true
			} else {
				fresh = true
			}
		}
		if !fresh || !old {
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

// listenerInodes are the socket inodes of the port's listeners in h.
func listenerInodes(h harness.NetnsHost, port int) ([]uint32, error) {
	var inodes []uint32
	err := h.Do(func() error {
		return harness.DiagTCP(1<<harness.TCPListen, func(d *harness.DiagSocket) {
			if int(d.Local.Port()) == port && d.Inode != 0 {
				inodes = append(inodes, d.Inode)
			}
		})
	})
	if err != nil {
		return nil, fmt.Errorf("on %s: listeners: %w", h.Name(), err)
	}
	return inodes, nil
}

// SynHoldStats describe the holds of a storm: the engine, how long each reload's hold lasted, and the
// engine's counters: the NFQUEUE program's (Queue.Late* are the times the SYNs were held: what the hold
// added to their connects; the program's histogram spans 0-50 ms, so beyond that only LateMean and
// LateMax are exact) or the plug qdiscs' (Plug: SYNs held per hold, passed, dropped over the limit).
type SynHoldStats struct {
	Engine string `json:"engine"`
	// PlugUnavailable says why the plug qdisc did not hold the SYNs.
	PlugUnavailable string `json:"plug_unavailable,omitempty"`
	Holds           int    `json:"holds"`
	// HoldP50, HoldP99 and HoldMax are over the reloads: from the hold's start to the SYNs' release.
	HoldP50 time.Duration `json:"hold_p50_ns"`
	HoldP99 time.Duration `json:"hold_p99_ns"`
	HoldMax time.Duration `json:"hold_max_ns"`
	// Undrained counts reloads that began with connections still queued (the before window ran out);
	// Unclosed those whose old listener was still open when the after window ran out.
	Undrained int                `json:"undrained"`
	Unclosed  int                `json:"unclosed"`
	Queue     *impair.QueueStats `json:"queue,omitempty"`
	Plug      *impair.PlugStats  `json:"plug,omitempty"`
}

// Stats are the holds so far (after Close, the last counters).
func (s *SynHold) Stats() SynHoldStats {
	st := SynHoldStats{Engine: s.Engine(), PlugUnavailable: s.plugMissing}
	if s.nfq != nil {
		q := s.nfq.Stats()
		st.Queue = &q
	}
	if s.plug != nil {
		p := s.plug.Stats()
		st.Plug = &p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Holds, st.Undrained, st.Unclosed = len(s.holds), s.undrained, s.unclosed
	if n := len(s.holds); n > 0 {
		h := slices.Sorted(slices.Values(s.holds))
		st.HoldP50, st.HoldP99, st.HoldMax = h[(n+1)/2-1], h[(n*99+99)/100-1], h[n-1]
	}
	return st
}

// Close lets any held SYN go and removes the gate (idempotent).
func (s *SynHold) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if err := s.gate.Close(); err != nil {
		return fmt.Errorf("syn-hold on %s: %w", s.h.Name(), err)
	}
	return nil
}
