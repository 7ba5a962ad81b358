package impair

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/faultlab/faultlab/harness"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// ErrNoPlug is returned (wrapped) by DetectPlug when the kernel has no plug qdisc (sch_plug).
var ErrNoPlug = errors.New("the plug qdisc (sch_plug) is missing")

// DetectPlug reports whether the kernel can hold packets in a plug qdisc (sch_plug, the qdisc that buffers
// a device's packets until told to release them), by adding one as the root qdisc of a probe veth pair
// in h's namespace (never the root namespace) and removing both. It returns nil when it can, an error
// wrapping ErrNoPlug when the module is missing, and another error when the probe itself failed.
func DetectPlug(h harness.NetnsHost) error {
	if err := refuseRoot(h); err != nil {
		return err
	}
	tc, err := newTCOps(h)
	if err != nil {
		return err
	}
	defer tc.close()
	dev, err := addProbeVeth(tc)
	if err != nil {
		return err
	}
	defer delProbeVeth(tc)
	plug := &netlink.GenericQdisc{QdiscAttrs: qattrs(dev, netlink.HANDLE_ROOT, rootHandle), QdiscType: "plug"}
	err = tc.h.QdiscAdd(plug)
	switch {
	case err == nil:
		_ = tc.delQdisc(dev, netlink.HANDLE_ROOT, rootHandle)
		return nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("%w (kernel %s): adding one failed: %w", ErrNoPlug, kernelRelease(), err)
	}
	return fmt.Errorf("probe the plug qdisc: %w", err)
}

// Actions of the plug qdisc (include/uapi/linux/pkt_sched.h, struct tc_plug_qopt).
const (
	plugBuffer            = 0 // TCQ_PLUG_BUFFER: hold what arrives from now on
	plugReleaseIndefinite = 2 // TCQ_PLUG_RELEASE_INDEFINITE: let everything held go, and hold nothing more
)

// plugLimit is each plug's queue limit in bytes (a held SYN takes about 80): some 50,000 SYNs, more than
// any hold of the lab's reloads collects.
const plugLimit = 4 << 20

// PlugGate holds a port's SYNs in the kernel, as the production technique does: on every device of a
// host's namespace but the loopback, an ingress filter redirects the SYNs to the port (IPv4, TCP SYN
// without ACK) to an ifb device whose root qdisc is a plug; while the gate is open the plug lets every
// packet through at once, while it is shut the plug holds them, and opening lets them go in arrival
// order. Other packets never take the detour. The ifb re-injects a packet with its device as the input
// device, so the host sees the SYN as if it had just arrived:
//
//	qdisc ingress ffff: dev <link>
//	filter parent ffff: u32 match ip ihl 5, ip protocol 6, tcp dport <port>, tcp flags SYN/SYN|ACK
//	        action mirred egress redirect dev flplug<index of link>
//	qdisc plug 1: dev flplug<index> root limit 4MiB
//
// Each hold's held packets are the plug's queue length when it opens (Stats).
type PlugGate struct {
	h     harness.NetnsHost
	tc    *tcOps
	links []plugLink

	mu     sync.Mutex
	shut   bool
	closed bool
	held   []int
	last   PlugStats
}

type plugLink struct {
	name     string
	idx, ifb int
}

// PlugStats are a PlugGate's counters: the devices whose SYNs it redirected, the holds, the packets held
// (in all and at most in one hold), and the plugs' own counts of packets passed and dropped (over the
// limit).
type PlugStats struct {
	Links   []string `json:"links"`
	Holds   int      `json:"holds"`
	Held    int      `json:"held"`
	HeldMax int      `json:"held_max"`
	Passed  uint64   `json:"passed"`
	Dropped uint64   `json:"dropped"`
}

func plugIFBName(linkIndex int) string { return "flplug" + strconv.Itoa(linkIndex) }

// OpenPlugGate builds the redirect and the plugs in h's namespace (never the root namespace); the gate
// starts open. It fails (undoing what it built) when the kernel lacks a part: sch_plug, ifb, the ingress
// qdisc, cls_u32 or act_mirred.
func OpenPlugGate(h harness.NetnsHost, port int) (g *PlugGate, err error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("plug gate: port %d out of range", port)
	}
	if err := refuseRoot(h); err != nil {
		return nil, err
	}
	tc, err := newTCOps(h)
	if err != nil {
		return nil, err
	}
	g = &PlugGate{h: h, tc: tc}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("plug gate on %s: %w", h.Name(), err), g.Close())
			g = nil
		}
	}()
	links, err := tc.h.LinkList()
	if err != nil {
		return g, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || l.Type() == "ifb" {
			continue
		}
		pl, err := g.addLink(a.Name, a.Index, port)
		g.links = append(g.links, pl) // Close undoes a part-built link too
		if err != nil {
			return g, err
		}
	}
	if len(g.links) == 0 {
		return g, errors.New("no device but the loopback")
	}
	return g, nil
}

// addLink builds one device's ifb, plug (released) and redirect.
func (g *PlugGate) addLink(name string, idx, port int) (plugLink, error) {
	pl := plugLink{name: name, idx: idx}
	ifbName := plugIFBName(idx)
	// The plug goes on the ifb before the redirect: no SYN reaches the ifb's default qdisc.
	if err := g.tc.h.LinkAdd(&netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: ifbName, TxQLen: 1000}}); err != nil &&
		!errors.Is(err, unix.EEXIST) {
		return pl, fmt.Errorf("add ifb %s: %w", ifbName, err)
	}
	ifb, err := g.tc.index(ifbName)
	if err != nil {
		return pl, err
	}
	if err := g.plug(ifb, unix.NLM_F_CREATE|unix.NLM_F_EXCL, plugReleaseIndefinite); err != nil {
		return pl, fmt.Errorf("plug qdisc on %s: %w", ifbName, err)
	}
	// A new plug holds until told otherwise.
	if err := g.plug(ifb, 0, plugReleaseIndefinite); err != nil {
		return pl, fmt.Errorf("release plug on %s: %w", ifbName, err)
	}
	pl.ifb = ifb
	_, err = g.tc.redirect(name, idx, ifbName, synSel(port))
	return pl, err
}

// synSel is the u32 selector of IPv4 TCP SYNs (SYN set, ACK clear) to port, for packets without IP
// options (the offsets are from the IP header; a SYN with options is not held). Masks and values are
// the big-endian words as numbers (the library converts them).
func synSel(port int) *netlink.TcU32Sel {
	return &netlink.TcU32Sel{Flags: netlink.TC_U32_TERMINAL, Keys: []netlink.TcU32Key{
		{Mask: 0x0f000000, Val: 0x05000000, Off: 0},             // ihl 5
		{Mask: 0x00ff0000, Val: unix.IPPROTO_TCP << 16, Off: 8}, // protocol tcp
		{Mask: 0x0000ffff, Val: uint32(port), Off: 20},          // tcp dport
		{Mask: 0x00120000, Val: 0x00020000, Off: 32},            // tcp flags & (syn|ack) == syn
	}}
}

// plug sends the plug qdisc at dev's root an action (a create when flags has NLM_F_CREATE).
func (g *PlugGate) plug(dev, flags int, action int32) error {
	req := plugRequest(dev, flags, action)
	return g.h.Do(func() error { _, err := req.Execute(unix.NETLINK_ROUTE, 0); return err })
}

// plugRequest is the RTM_NEWQDISC message for the plug qdisc at dev's root 1: with an action and the
// lab's limit (struct tc_plug_qopt: int action, __u32 limit).
func plugRequest(dev, flags int, action int32) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(unix.RTM_NEWQDISC, flags|unix.NLM_F_ACK)
	req.AddData(&nl.TcMsg{Family: nl.FAMILY_ALL, Ifindex: int32(dev), Handle: rootHandle, Parent: netlink.HANDLE_ROOT})
	req.AddData(nl.NewRtAttr(nl.TCA_KIND, nl.ZeroTerminated("plug")))
	opt := make([]byte, 8)
	binary.NativeEndian.PutUint32(opt[0:], uint32(action))
	binary.NativeEndian.PutUint32(opt[4:], plugLimit)
	req.AddData(nl.NewRtAttr(nl.TCA_OPTIONS, opt))
	return req
}

// Shut holds every SYN to the port from now on until Open.
func (g *PlugGate) Shut() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("plug gate: closed")
	}
	if g.shut {
		return nil
	}
	var errs []error
	for _, l := range g.links {
		if err := g.plug(l.ifb, 0, plugBuffer); err != nil {
			errs = append(errs, fmt.Errorf("plug gate: buffer on %s: %w", plugIFBName(l.idx), err))
		}
	}
	g.shut = true // a partly shut gate must still be opened
	return errors.Join(errs...)
}

// Open lets the held SYNs go, in arrival order, and every later one through.
func (g *PlugGate) Open() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open()
}

func (g *PlugGate) open() error {
	if !g.shut {
		return nil
	}
	held, _ := g.read()
	var errs []error
	for _, l := range g.links {
		if err := g.plug(l.ifb, 0, plugReleaseIndefinite); err != nil {
			errs = append(errs, fmt.Errorf("plug gate: release on %s: %w", plugIFBName(l.idx), err))
		}
	}
	g.shut = false
	g.held = append(g.held, held)
	return errors.Join(errs...)
}

// read sums the plugs' queue lengths and keeps their counters in g.last.
func (g *PlugGate) read() (int, error) {
	qlen := 0
	var passed, dropped uint64
	var errs []error
	for _, l := range g.links {
		qs, err := g.tc.h.QdiscList(&netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Index: l.ifb}})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, q := range qs {
			s := q.Attrs().Statistics
			if q.Type() != "plug" || s == nil {
				continue
			}
			if s.Queue != nil {
				qlen += int(s.Queue.Qlen)
				dropped += uint64(s.Queue.Drops)
			}
			if s.Basic != nil {
				passed += uint64(s.Basic.Packets)
			}
		}
	}
	if len(errs) == 0 {
		g.last.Passed, g.last.Dropped = passed, dropped
	}
	return qlen, errors.Join(errs...)
}

// Stats are the gate's counters so far (after Close, the last ones read).
func (g *PlugGate) Stats() PlugStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		_, _ = g.read()
	}
	st := g.last
	st.Links = nil
	for _, l := range g.links {
		st.Links = append(st.Links, l.name)
	}
	st.Holds = len(g.held)
	for _, n := range g.held {
		st.Held += n
		st.HeldMax = max(st.HeldMax, n)
	}
	return st
}

// Close lets any held SYN go and removes the redirects (with their ingress qdiscs) and the ifbs (with
// their plugs). Idempotent.
func (g *PlugGate) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	errs := []error{g.open()}
	_, _ = g.read()
	g.closed = true
	for _, l := range g.links {
		errs = append(errs, g.tc.unredirect(l.name, l.idx, plugIFBName(l.idx)))
	}
	g.tc.close()
	return errors.Join(errs...)
}
