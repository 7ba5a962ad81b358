package impair

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// drainTimeout bounds how long Close waits for held packets to be released.
const drainTimeout = 2 * time.Second

// userspaceEngine impairs without netem, all inside the router namespace:
//   - loss: nftables rules in the forward hook, `iifname/oifname X numgen random mod 1000000 < K drop`;
//   - delay, jitter and burst loss: a forward-hook rule `queue num N bypass` per direction and the NFQUEUE
//     program (queue.go) that holds each packet until due;
//   - rate: tbf as root qdisc of the router-side veth (to_host) or of an ifb that the veth's ingress is
//     redirected to (from_host).
//
// Both directions are matched in the router's forward hook, by output interface (to_host) or input
// interface (from_host); a packet crossing two impaired directions gets both losses and the sum of both
// delays.
type userspaceEngine struct {
	t     Target
	opts  Options
	mu    sync.Mutex
	nsFD  int
	tc    *tcOps
	nft   *nftRules
	q     *queueProgram
	state map[string]Impairment // by path key
	rated map[string]int        // path key -> device with our root tbf
	// counters are the nft counters as last read (kept after Close deletes the table).
	counters map[counterID]uint64
	nftGone  bool
	closed   bool
}

func newUserspace(t Target, opts Options) (e *userspaceEngine, err error) {
	e = &userspaceEngine{t: t, opts: opts, nsFD: -1, state: map[string]Impairment{}, rated: map[string]int{}}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("open userspace impair engine: %w", err), e.Close())
			e = nil
		}
	}()
	if e.nsFD, err = unix.Open(t.Router.NetnsPath(), unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		return e, fmt.Errorf("open router netns: %w", err)
	}
	if e.tc, err = newTCOps(t.Router); err != nil {
		return e, err
	}
	if e.nft, err = openNFT(e.nsFD, t.Prefix+"-impair", opts.QueueNum); err != nil {
		return e, err
	}
	e.q, err = startQueue(t.Router, queueConfig{num: opts.QueueNum, maxLen: opts.MaxQueueLen,
		sockBuf: opts.SocketBuffer})
	return e, err
}

func (e *userspaceEngine) Name() string { return EngineUserspace }

func (e *userspaceEngine) Clear(ctx context.Context, l Link, dir Direction) error {
	return e.Apply(ctx, l, dir, Impairment{})
}

func (e *userspaceEngine) Apply(ctx context.Context, l Link, dir Direction, imp Impairment) error {
	if err := imp.Validate(); err != nil {
		return err
	}
	link, err := e.t.link(l)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("userspace engine closed")
	}
	key := pathKey(l, dir)
	if err := e.applyRate(key, link, dir, imp.Rate); err != nil {
		return fmt.Errorf("rate on %s: %w", key, err)
	}
	idx, err := e.tc.index(link)
	if err != nil {
		return err
	}
	// The program learns the new delay before the rules send it packets, and keeps the old one until
	// the rules stop.
	held := imp.delays() || imp.LossBurst != nil
	if held {
		e.q.setPath(key, uint32(idx), dir, &imp)
	}
	if imp.IsZero() {
		delete(e.state, key)
	} else {
		e.state[key] = imp
	}
	if err := e.nft.sync(e.nftPaths()); err != nil {
		return err
	}
	if !held {
		e.q.setPath(key, uint32(idx), dir, nil)
	}
	return nil
}

// applyRate installs, changes or removes the direction's tbf.
func (e *userspaceEngine) applyRate(key, link string, dir Direction, r Rate) error {
	if r == 0 {
		dev, ok := e.rated[key]
		if !ok {
			return nil
		}
		delete(e.rated, key)
		if dir == FromHost {
			return e.tc.removeIFB(link)
		}
		return e.tc.delQdisc(dev, netlink.HANDLE_ROOT, rootHandle)
	}
	dev, err := e.tc.device(link, dir)
	if err != nil {
		return err
	}
	e.rated[key] = dev
	return e.tc.replace(tbfQdisc(qattrs(dev, netlink.HANDLE_ROOT, rootHandle), tbfFor(r)))
}

func (e *userspaceEngine) nftPaths() []nftPath {
	var out []nftPath
	for key, imp := range e.state {
		l, d := splitKey(key)
		out = append(out, nftPath{key: key, link: e.t.Links[l], dir: d, loss: imp.Loss,
			queue: imp.delays() || imp.LossBurst != nil})
	}
	return out
}

// Close removes the rules (no new packets are queued), lets held packets go, stops the program and
// removes the qdiscs and ifbs. Deleting the router namespace would remove all of it too.
func (e *userspaceEngine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	var errs []error
	if e.nft != nil {
		e.readCounters()
		errs = append(errs, e.nft.close())
		e.nftGone = true
	}
	if e.q != nil {
		errs = append(errs, e.q.stop(drainTimeout))
	}
	if e.tc != nil {
		for _, k := range sortedKeys(e.rated) {
			l, d := splitKey(k)
			errs = append(errs, e.applyRate(k, e.t.Links[l], d, 0))
		}
		e.tc.close()
	}
	if e.nsFD >= 0 {
		unix.Close(e.nsFD)
	}
	return errors.Join(errs...)
}

// readCounters refreshes e.counters while the table exists.
func (e *userspaceEngine) readCounters() {
	if e.nft == nil || e.nftGone {
		return
	}
	if c, err := e.nft.readCounters(); err == nil {
		e.counters = c
	}
}

func (e *userspaceEngine) Stats() EngineStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := EngineStats{Engine: EngineUserspace, Params: map[string]string{
		"loss": fmt.Sprintf("nft table ip %s-impair, forward hook: numgen random mod %d < K drop",
			e.t.Prefix, lossModulus),
		"rate": "tc tbf root of the router-side veth (to_host) or of its ifb (from_host), bucket 5 ms, " +
			"queue 100 ms",
	}}
	if e.nft != nil {
		s.Params["delay"] = fmt.Sprintf("%s %d bypass in the forward hook; program: copy meta, GSO, "+
			"fail-open, max queue %d, socket buffer %d B, ppoll on a locked thread (timer slack 1 ns)",
			e.nft.flavour, e.opts.QueueNum, e.opts.MaxQueueLen, e.opts.SocketBuffer)
	}
	e.readCounters()
	var queued uint64
	for id, n := range e.counters {
		switch id.kind {
		case "loss":
			if s.LossDropped == nil {
				s.LossDropped = map[string]uint64{}
			}
			s.LossDropped[id.key] = n
		case "queue":
			queued += n
		}
	}
	if e.q != nil {
		s.Queue = e.q.stats(queued)
		s.Params["release_thread"] = e.q.prio()
	}
	return s
}
