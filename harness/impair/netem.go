package impair

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// netemLossGE is NETEM_LOSS_GE, the Gilbert-Elliott entry nested in TCA_NETEM_LOSS.
const netemLossGE = 2

// netemEngine is real tc netem: per direction, netem as root qdisc 1: of the device (the router-side
// veth for to_host, its ifb for from_host) with a tbf child 2: when a rate is set.
type netemEngine struct {
	t      Target
	mu     sync.Mutex
	tc     *tcOps
	active map[string]int // path key -> device carrying a netem root
	closed bool
}

func newNetem(t Target) (*netemEngine, error) {
	tc, err := newTCOps(t.Router)
	if err != nil {
		return nil, err
	}
	return &netemEngine{t: t, tc: tc, active: map[string]int{}}, nil
}

func (e *netemEngine) Name() string { return EngineNetem }

func (e *netemEngine) Apply(ctx context.Context, l Link, dir Direction, imp Impairment) error {
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
		return errors.New("netem engine closed")
	}
	key := pathKey(l, dir)
	if imp.IsZero() {
		return e.clear(key, link, dir)
	}
	dev, err := e.tc.device(link, dir)
	if err != nil {
		return err
	}
	e.active[key] = dev
	req := netemRequest(dev, netlink.HANDLE_ROOT, rootHandle, imp, unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
	if err := e.t.Router.Do(func() error { _, err := req.Execute(unix.NETLINK_ROUTE, 0); return err }); err != nil {
		return fmt.Errorf("netem on %s %s: %w", l, dir, err)
	}
	if imp.Rate == 0 {
		return e.tc.delQdisc(dev, childParent, childHandle)
	}
	return e.tc.replace(tbfQdisc(qattrs(dev, childParent, childHandle), tbfFor(imp.Rate)))
}

func (e *netemEngine) Clear(ctx context.Context, l Link, dir Direction) error {
	return e.Apply(ctx, l, dir, Impairment{})
}

func (e *netemEngine) clear(key, link string, dir Direction) error {
	dev, ok := e.active[key]
	if !ok {
		return nil
	}
	delete(e.active, key)
	if dir == FromHost {
		return e.tc.removeIFB(link)
	}
	return e.tc.delQdisc(dev, netlink.HANDLE_ROOT, rootHandle)
}

func (e *netemEngine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	var errs []error
	for _, l := range sortedKeys(e.t.Links) {
		for _, d := range Directions {
			errs = append(errs, e.clear(pathKey(Link(l), d), e.t.Links[l], d))
		}
	}
	e.tc.close()
	return errors.Join(errs...)
}

func (e *netemEngine) Stats() EngineStats {
	return EngineStats{Engine: EngineNetem, Params: map[string]string{
		"delay": "tc netem (root 1:) on the router-side veth (to_host) or its ifb (from_host)",
		"loss":  "tc netem loss (random, or gemodel)",
		"rate":  "tc tbf 2: under netem, bucket 5 ms, queue 100 ms",
	}}
}

// netemRequest is the RTM_NEWQDISC message for imp's netem qdisc. It carries what netlink.Netem does
// (built by netemQdisc, the one unit conversion) serialised as the library's qdiscPayload does, plus the
// two attributes the library cannot express: the jitter distribution table (TCA_NETEM_DELAY_DIST) and the
// Gilbert-Elliott loss model (TCA_NETEM_LOSS / NETEM_LOSS_GE).
func netemRequest(dev int, parent, handle uint32, imp Impairment, flags int) *nl.NetlinkRequest {
	q := netemQdisc(qattrs(dev, parent, handle), imp)
	req := nl.NewNetlinkRequest(unix.RTM_NEWQDISC, flags|unix.NLM_F_ACK)
	req.AddData(&nl.TcMsg{Family: nl.FAMILY_ALL, Ifindex: int32(dev), Handle: handle, Parent: parent})
	req.AddData(nl.NewRtAttr(nl.TCA_KIND, nl.ZeroTerminated("netem")))
	opt := nl.TcNetemQopt{Latency: q.Latency, Limit: q.Limit, Loss: q.Loss, Gap: q.Gap,
		Duplicate: q.Duplicate, Jitter: q.Jitter}
	options := nl.NewRtAttr(nl.TCA_OPTIONS, opt.Serialize())
	if table := distTable(imp.Distribution); table != nil && imp.Jitter > 0 {
		options.AddRtAttr(nl.TCA_NETEM_DELAY_DIST, int16sNative(table))
	}
	if g := imp.LossBurst; g != nil {
		loss := options.AddRtAttr(nl.TCA_NETEM_LOSS, nil)
		ge := geModel(*g)
		loss.AddRtAttr(netemLossGE, u32sNative(ge[:]))
	}
	if q.Rate64 > 0 {
		rate := nl.TcNetemRate{}
		if q.Rate64 >= uint64(1<<32) {
			options.AddRtAttr(nl.TCA_NETEM_RATE64, nl.Uint64Attr(q.Rate64))
			rate.Rate = ^uint32(0)
		} else {
			rate.Rate = uint32(q.Rate64)
		}
		options.AddRtAttr(nl.TCA_NETEM_RATE, rate.Serialize())
	}
	req.AddData(options)
	return req
}

func int16sNative(v []int16) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.NativeEndian.PutUint16(b[2*i:], uint16(x))
	}
	return b
}

func u32sNative(v []uint32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.NativeEndian.PutUint32(b[4*i:], x)
	}
	return b
}
