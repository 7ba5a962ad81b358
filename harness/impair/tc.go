package impair

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/faultlab/faultlab/harness"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Qdisc handles. Both engines put their qdisc at the root of a device as 1:, and a tbf under netem as 2:.
var (
	rootHandle  = netlink.MakeHandle(1, 0)
	childParent = netlink.MakeHandle(1, 1)
	childHandle = netlink.MakeHandle(2, 0)
	ingressH    = netlink.MakeHandle(0xffff, 0)
)

// tcOps does qdisc and link work in the router namespace through one netlink handle bound to it: the
// to_host direction on the router-side veth itself, the from_host direction on an ifb device that the
// veth's ingress is redirected to (ingress qdisc, u32 match-all filter, mirred egress redirect). The ifb
// re-injects packets with the veth as their input device, so forward-hook rules still see iifname <host>.
type tcOps struct {
	h    *netlink.Handle
	ifbs map[string]bool // router-side links with an ifb
}

func newTCOps(router harness.NetnsHost) (*tcOps, error) {
	ns, err := netns.GetFromPath(router.NetnsPath())
	if err != nil {
		return nil, fmt.Errorf("open router netns: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in router: %w", err)
	}
	return &tcOps{h: h, ifbs: map[string]bool{}}, nil
}

func (t *tcOps) close() { t.h.Close() }

func (t *tcOps) index(name string) (int, error) {
	l, err := t.h.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("find link %s: %w", name, err)
	}
	return l.Attrs().Index, nil
}

// device is the device that carries dir of the router-side link: the link itself for to_host, its ifb
// (created on demand) for from_host.
func (t *tcOps) device(link string, dir Direction) (int, error) {
	if dir == ToHost {
		return t.index(link)
	}
	return t.ensureIFB(link)
}

func ifbName(linkIndex int) string { return "flifb" + strconv.Itoa(linkIndex) }

// ensureIFB creates link's ifb and the redirect to it, once; it returns the ifb's index.
func (t *tcOps) ensureIFB(link string) (int, error) {
	idx, err := t.index(link)
	if err != nil {
		return 0, err
	}
	if t.ifbs[link] {
		return t.index(ifbName(idx))
	}
	t.ifbs[link] = true // removeIFB undoes whatever part exists
	return t.redirect(link, idx, ifbName(idx), nil)
}

// redirect creates the ifb device name (up) and redirects to it the ingress packets of the device idx
// (named link) that sel selects (nil: all): ingress qdisc, u32 filter, mirred egress redirect. It returns
// the ifb's index; unredirect undoes whatever part exists.
func (t *tcOps) redirect(link string, idx int, name string, sel *netlink.TcU32Sel) (int, error) {
	if err := t.h.LinkAdd(&netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: name, TxQLen: 1000}}); err != nil &&
		!errors.Is(err, unix.EEXIST) {
		return 0, fmt.Errorf("add ifb %s: %w", name, err)
	}
	ifb, err := t.h.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("find ifb %s: %w", name, err)
	}
	if err := t.h.LinkSetUp(ifb); err != nil {
		return 0, fmt.Errorf("up ifb %s: %w", name, err)
	}
	ing := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Parent: netlink.HANDLE_INGRESS,
		Handle: ingressH}}
	if err := t.h.QdiscReplace(ing); err != nil {
		return 0, fmt.Errorf("add ingress qdisc on %s: %w", link, err)
	}
	proto := uint16(unix.ETH_P_ALL)
	if sel != nil {
		proto = unix.ETH_P_IP // the selector's offsets are from the IPv4 header
	}
	filter := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: ingressH, Priority: 1, Protocol: proto},
		Sel:         sel,
		Actions:     []netlink.Action{netlink.NewMirredAction(ifb.Attrs().Index)},
	}
	if err := t.h.FilterReplace(filter); err != nil {
		return 0, fmt.Errorf("redirect ingress of %s to %s: %w", link, name, err)
	}
	return ifb.Attrs().Index, nil
}

// removeIFB deletes link's ingress qdisc (and with it the redirect) and its ifb; missing parts are fine.
func (t *tcOps) removeIFB(link string) error {
	if !t.ifbs[link] {
		return nil
	}
	delete(t.ifbs, link)
	idx, err := t.index(link)
	if err != nil {
		return ignoreGone(err)
	}
	return t.unredirect(link, idx, ifbName(idx))
}

// unredirect deletes the ingress qdisc of the device idx (named link), and with it the redirect, and the
// ifb name; missing parts are fine.
func (t *tcOps) unredirect(link string, idx int, name string) error {
	var errs []error
	ing := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Parent: netlink.HANDLE_INGRESS,
		Handle: ingressH}}
	if err := t.h.QdiscDel(ing); ignoreGone(err) != nil {
		errs = append(errs, fmt.Errorf("delete ingress qdisc on %s: %w", link, err))
	}
	if ifb, err := t.h.LinkByName(name); err == nil {
		if err := t.h.LinkDel(ifb); ignoreGone(err) != nil {
			errs = append(errs, fmt.Errorf("delete ifb %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// replaceRoot installs q as dev's root qdisc 1: (changing it in place if one of the same kind is there).
func (t *tcOps) replace(q netlink.Qdisc) error {
	if err := t.h.QdiscReplace(q); err != nil {
		return fmt.Errorf("replace %s qdisc on link %d: %w", q.Type(), q.Attrs().LinkIndex, err)
	}
	return nil
}

// delQdisc deletes the qdisc at parent/handle on dev; absent is fine.
func (t *tcOps) delQdisc(dev int, parent, handle uint32) error {
	q := &netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: dev, Parent: parent, Handle: handle},
		QdiscType: "tbf"}
	if err := t.h.QdiscDel(q); ignoreGone(err) != nil {
		return fmt.Errorf("delete qdisc %x on link %d: %w", handle, dev, err)
	}
	return nil
}

// ignoreGone treats "already gone" as success: teardown is idempotent.
func ignoreGone(err error) error {
	var nf netlink.LinkNotFoundError
	switch {
	case err == nil, errors.As(err, &nf), errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV),
		errors.Is(err, unix.EINVAL), errors.Is(err, os.ErrNotExist):
		return nil
	}
	return err
}

func qattrs(dev int, parent, handle uint32) netlink.QdiscAttrs {
	return netlink.QdiscAttrs{LinkIndex: dev, Parent: parent, Handle: handle}
}
