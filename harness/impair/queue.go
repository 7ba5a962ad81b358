package impair

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faultlab/faultlab/harness"
	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// queueProgram is the userspace engine's delay line: an NFQUEUE listener in the router namespace that
// holds each queued packet until its due time and then accepts it (or drops it, for burst loss).
//
// The kernel copies metadata only (no payload), hands GSO packets over whole, and lets packets through
// undelayed when the queue is full or the socket overruns (fail-open), which the counters report as
// overflow; the nft rule's bypass flag lets traffic through if the program is gone.
//
// go-nfqueue's goroutine receives the packets (onPacket): the due time counts from the kernel's receive
// timestamp (so a receiver running late costs nothing until it passes the due time), the delay is drawn,
// keep_order and burst loss applied, and the packet handed over through a lock-free ring (a mutex here let
// a descheduled receiver stall releases by tens of ms). The releaser (releaser.go), a
// goroutine locked to an OS thread with real-time priority, sleeps in ppoll until the earliest due time
// (timer slack 1 ns; a Go timer would add ~0.6 ms) and sends all due verdicts in one datagram, as batch
// verdicts where the ids allow. It sleeps and sends with raw system calls, keeping its P: on a busy
// machine, handing the P back and forth with the Go scheduler delayed releases by up to hundreds of ms.
type queueProgram struct {
	nf     *nfqueue.Nfqueue
	cancel context.CancelFunc
	fd     int // the queue socket, for the releaser's raw verdicts (valid until nf is closed)
	tsFD   int // holds the kernel's receive timestamping on (-1 if that failed)
	efd    int // eventfd: wakes the releaser when an earlier packet arrives or at stop
	epoch  time.Time
	num    uint16
	router harness.NetnsHost

	paths  atomic.Pointer[pathTable]
	states map[string]*pathState // by path key; changed under the engine's lock

	// Between receiver and releaser, without locks (see ring).
	ring       *ring
	sleepUntil atomic.Int64 // the releaser's wake-up target; a receiver with an earlier packet lowers it
	pending    atomic.Int64 // packets the releaser holds
	stopping   atomic.Bool

	// Receiver-only state (go-nfqueue calls onPacket from one goroutine).
	rng    *rand.Rand
	lastID uint32
	haveID bool
	lagBuf []time.Duration // samples not yet merged into lag

	// Releaser-only state.
	pend    pending
	sendBuf []byte
	local   releaseStats // not yet merged into the shared counters

	seen, gaps, enobufs, tsSeen atomic.Uint64
	// stale counts verdicts the kernel answered ENOENT: no packet with that id was queued any more
	stale atomic.Uint64

	// statsMu guards what follows. The loops merge their samples with TryLock (the releaser) or in
	// batches (the receiver), so a reader holding it never delays a release.
	statsMu  sync.Mutex
	late     hist // release time - due time
	lag      hist // receive time - kernel timestamp
	shared   releaseStats
	errs     []error
	lastProc procQueue // the kernel's counters as read at stop
	priority string    // the releaser thread's scheduling

	done chan struct{} // closed when the releaser has exited

	// gated: the program is a gate (gate.go), not a delay line: while holding, every packet is held until
	// the gate opens; otherwise it is let through at once.
	gated   bool
	holding atomic.Bool
}

// releaseStats are the releaser's counters.
type releaseStats struct {
	late       []time.Duration
	released   uint64
	dropped    uint64
	maxPending int
}

// pathTable maps interfaces to impaired directions: from_host by input ifindex, to_host by output ifindex.
// It is replaced whole (copy on write) and read without locks.
type pathTable struct {
	from, to map[uint32]*pathState
}

// pathState is one impaired direction. cfg is swapped by Apply; ge and last belong to the receiver.
type pathState struct {
	key   string
	cfg   atomic.Pointer[pathCfg]
	ge    geState
	geFor *pathCfg
	last  int64 // release time of this direction's previous packet (keep_order)
}

type pathCfg struct {
	imp Impairment
	smp sampler
}

type queueConfig struct {
	num     uint16
	maxLen  uint32
	sockBuf int
	gated   bool // a gate (gate.go) rather than a delay line
}

// startQueue opens the queue on a thread inside the router namespace, binds it and starts both loops.
func startQueue(router harness.NetnsHost, cfg queueConfig) (*queueProgram, error) {
	q := &queueProgram{epoch: time.Now(), num: cfg.num, router: router, states: map[string]*pathState{},
		rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), ring: newRing(cfg.maxLen),
		done: make(chan struct{}), gated: cfg.gated}
	q.sleepUntil.Store(noDue)
	q.paths.Store(&pathTable{from: map[uint32]*pathState{}, to: map[uint32]*pathState{}})
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	q.efd = efd
	err = router.Do(func() error {
		q.tsFD = enableNetstamp()
		var err error
		q.nf, err = nfqueue.Open(&nfqueue.Config{NfQueue: cfg.num, MaxQueueLen: cfg.maxLen,
			Copymode: nfqueue.NfQnlCopyMeta, Flags: nfqueue.NfQaCfgFlagGSO | nfqueue.NfQaCfgFlagFailOpen,
			AfFamily: unix.AF_INET, WriteTimeout: time.Second})
		return err
	})
	if err != nil {
		unix.Close(efd)
		if q.tsFD >= 0 {
			unix.Close(q.tsFD)
		}
		return nil, fmt.Errorf("open nfqueue %d in router: %w", cfg.num, err)
	}
	if q.fd, err = socketFD(q.nf.Con); err != nil {
		q.nf.Close()
		unix.Close(efd)
		return nil, err
	}
	if err := setRcvBufForce(q.nf.Con, cfg.sockBuf); err != nil {
		q.nf.Close()
		unix.Close(efd)
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	q.cancel = cancel
	if err := q.nf.RegisterWithErrorFunc(ctx, q.onPacket, q.onError); err != nil {
		cancel()
		q.nf.Close()
		unix.Close(efd)
		return nil, fmt.Errorf("bind nfqueue %d: %w", cfg.num, err)
	}
	holdP()
	go q.releaser()
	return q, nil
}

// socketFD is the netlink socket's descriptor.
func socketFD(c *netlink.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("nfqueue socket: %w", err)
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1, fmt.Errorf("nfqueue socket: %w", err)
	}
	return fd, nil
}

// setRcvBufForce sizes the socket's receive buffer beyond net.core.rmem_max (root only; a global sysctl
// the lab must not change).
func setRcvBufForce(c *netlink.Conn, size int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("nfqueue socket: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
	}); err != nil {
		return fmt.Errorf("nfqueue socket: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("set nfqueue receive buffer to %d: %w", size, serr)
	}
	return nil
}

func (q *queueProgram) now() int64 { return int64(time.Since(q.epoch)) }

// setPath installs (imp non-nil) or removes the impairment of one direction on interface ifindex.
// Packets already held keep their due times.
func (q *queueProgram) setPath(key string, ifindex uint32, dir Direction, imp *Impairment) {
	old := q.paths.Load()
	t := &pathTable{from: maps.Clone(old.from), to: maps.Clone(old.to)}
	m := t.to
	if dir == FromHost {
		m = t.from
	}
	st := q.states[key]
	if imp == nil {
		if st != nil {
			st.cfg.Store(nil)
		}
		delete(m, ifindex)
	} else {
		if st == nil {
			st = &pathState{key: key}
			q.states[key] = st
		}
		st.cfg.Store(&pathCfg{imp: *imp, smp: newSampler(*imp)})
		m[ifindex] = st
	}
	q.paths.Store(t)
}

// onPacket runs for every queued packet, in id order: it draws the packet's delay (summed over the
// directions it crosses), applies keep_order and burst loss, and hands it to the releaser.
func (q *queueProgram) onPacket(a nfqueue.Attribute) int {
	if a.PacketID == nil {
		return 0
	}
	id := *a.PacketID
	wall := time.Now()
	now := int64(wall.Sub(q.epoch))
	// The kernel's timestamp (wall clock) says when the packet reached the router: a receiver running
	// late does not add to the delay.
	var lag time.Duration
	if a.Timestamp != nil {
		if l := wall.Sub(*a.Timestamp); l > 0 && l < time.Second {
			lag = l
			now -= int64(l)
		}
		q.tsSeen.Add(1)
	}
	q.seen.Add(1)
	if q.haveID && id != q.lastID+1 {
		q.gaps.Add(uint64(id - q.lastID - 1))
	}
	q.lastID, q.haveID = id, true
	if q.gated {
		q.pushArrival(arrival{id: id, due: now, held: q.holding.Load()}, lag)
		return 0
	}
	t := q.paths.Load()
	var hops [2]*pathState
	if a.InDev != nil {
		hops[0] = t.from[*a.InDev]
	}
	if a.OutDev != nil {
		hops[1] = t.to[*a.OutDev]
	}
	due, drop := now, false
	for _, st := range hops {
		if st == nil {
			continue
		}
		if cfg := st.cfg.Load(); cfg != nil {
			due += int64(cfg.smp.sample(q.rng))
			drop = q.burstLoss(st, cfg) || drop
		}
	}
	if drop {
		due = now
	} else {
		for _, st := range hops {
			if cfg := stCfg(st); cfg != nil && cfg.imp.KeepOrder {
				due = max(due, st.last)
			}
		}
		for _, st := range hops {
			if cfg := stCfg(st); cfg != nil && cfg.imp.KeepOrder {
				st.last = due
			}
		}
	}
	q.push(id, due, drop, lag)
	return 0
}

func stCfg(st *pathState) *pathCfg {
	if st == nil {
		return nil
	}
	return st.cfg.Load()
}

// burstLoss runs the direction's Gilbert-Elliott model, restarting it in the good state when the
// configuration changes.
func (q *queueProgram) burstLoss(st *pathState, cfg *pathCfg) bool {
	if cfg.imp.LossBurst == nil {
		return false
	}
	if st.geFor != cfg {
		st.ge, st.geFor = geState{m: *cfg.imp.LossBurst}, cfg
	}
	return st.ge.lose(q.rng)
}

// push hands the packet to the releaser and wakes it if the packet is due before its wake-up target.
// (The releaser publishes its target before it last looks at the ring, so one of the two sees the
// other: no wake-up is lost.)
func (q *queueProgram) push(id uint32, due int64, drop bool, lag time.Duration) {
	q.pushArrival(arrival{id: id, drop: drop, due: due}, lag)
}

// pushArrival is push for any arrival; a held one counts as due at heldDue (beyond every real due time,
// before noDue), so that it still wakes a releaser that sleeps with nothing to do, which then sees
// whether the gate has opened meanwhile.
func (q *queueProgram) pushArrival(a arrival, lag time.Duration) {
	q.ring.put(a)
	due := a.due
	if a.held {
		due = heldDue
	}
	for {
		cur := q.sleepUntil.Load()
		if due >= cur {
			break
		}
		if q.sleepUntil.CompareAndSwap(cur, due) {
			q.wake()
			break
		}
	}
	q.lagBuf = append(q.lagBuf, lag)
	if len(q.lagBuf) >= 4096 {
		q.statsMu.Lock()
	} else if len(q.lagBuf) < 64 || !q.statsMu.TryLock() {
		return
	}
	q.mergeLag()
	q.statsMu.Unlock()
}

// mergeLag moves the receiver's samples into the shared histogram (statsMu held).
func (q *queueProgram) mergeLag() {
	for _, l := range q.lagBuf {
		q.lag.add(l)
	}
	q.lagBuf = q.lagBuf[:0]
}

func (q *queueProgram) wake() {
	var one = [8]byte{1}
	_, _ = unix.Write(q.efd, one[:]) // EAGAIN means a wake-up is already pending
}

// onError keeps receiving after socket overruns and verdicts for packets the kernel no longer held (both
// counted) and after read-deadline wake-ups; anything else stops the receiver and is reported.
func (q *queueProgram) onError(err error) int {
	if errors.Is(err, unix.ENOBUFS) {
		q.enobufs.Add(1)
		return 0
	}
	// A verdict's error answer: the kernel no longer held a packet with that id. It drops queued packets
	// itself in some cases (e.g. with its connection tracking entry gone: seen only where the checker
	// closes with RSTs through a delayed link). The packet is lost either way; count it and go on, as
	// stopping would stall every packet queued after it.
	if errors.Is(err, unix.ENOENT) {
		q.stale.Add(1)
		return 0
	}
	var op *netlink.OpError
	if errors.As(err, &op) && op.Timeout() {
		return 0
	}
	q.statsMu.Lock()
	defer q.statsMu.Unlock()
	if !q.stopping.Load() {
		q.errs = append(q.errs, fmt.Errorf("nfqueue receive: %w", err))
	}
	return 1
}

// enableNetstamp opens a socket with SO_TIMESTAMPNS, which switches on the kernel's software receive
// timestamps (a system-wide static key that any timestamping socket, tcpdump's included, switches on; it
// changes no setting). While it is open, queued packets carry the time they reached the router. It
// returns the socket, or -1.
func enableNetstamp() int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(fd)
		return -1
	}
	return fd
}
