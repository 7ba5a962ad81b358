package netns

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The star network, shared with every provider whose hosts have a network namespace (harness/docker
// builds the same network between containers through Star): see the package comment for the addressing.

const (
	// routerLinkIndex0 is the interface index of host 0's router-side link. Router-side indexes must differ
	// from the host side's (eth0 is index 2 in every host): when a veth's index equals its peer's, the
	// kernel's linkwatch takes its carrier change for a non-urgent event and delays it by up to 1 s, during
	// which the host's packets are dropped.
	routerLinkIndex0 = 100
	// linkUpTimeout bounds the wait for links to become operational.
	linkUpTimeout = 3 * time.Second
)

// labNet is the lab's address space (RFC 2544 benchmarking range); hosts route it via the router.
var labNet = netip.MustParsePrefix("198.18.0.0/15")

// Star links hosts to the router, from a netlink handle in the router's namespace. Nothing is created in
// the root namespace: each veth pair is created in the router's namespace with its peer placed straight
// into the host's, and the kernel destroys the pairs with the namespaces.
type Star struct {
	rh *netlink.Handle
}

// OpenStar opens a netlink handle in the router's namespace at path and brings the router's lo up. Close
// the Star when the hosts are linked.
func OpenStar(path string) (*Star, error) {
	rh, err := handleIn(path)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	if err := linkUp(rh, "lo"); err != nil {
		rh.Close()
		return nil, fmt.Errorf("router: %w", err)
	}
	return &Star{rh: rh}, nil
}

// Close releases the router's handle; the links stay.
func (s *Star) Close() { s.rh.Close() }

// LinkHost links host i (0-based, topology order) to the router and addresses both ends: the router link
// is named hs.Name and has 198.18.i.1/24, the host's eth0 (in the namespace at hostNSPath) has
// 198.18.i.2 onwards, one per address, and a route to the lab via the router. It waits until eth0 is
// operational and returns the host's addresses (primary first) and the router's address on the link.
func (s *Star) LinkHost(i int, hs harness.HostSpec, hostNSPath string) (addrs []netip.Addr, gw netip.Addr,
	err error) {
	gw = hostAddr(i, 1)
	if err := s.addVeth(i, hs.Name, hostNSPath); err != nil {
		return nil, gw, err
	}
	rl, err := s.rh.LinkByName(hs.Name)
	if err != nil {
		return nil, gw, fmt.Errorf("router link %s: %w", hs.Name, err)
	}
	if err := s.rh.AddrAdd(rl, &netlink.Addr{IPNet: ipNet(gw)}); err != nil {
		return nil, gw, fmt.Errorf("address router link %s: %w", hs.Name, err)
	}
	if err := s.rh.LinkSetUp(rl); err != nil {
		return nil, gw, fmt.Errorf("up router link %s: %w", hs.Name, err)
	}
	addrs = make([]netip.Addr, numAddrs(hs))
	for k := range addrs {
		addrs[k] = hostAddr(i, 2+k)
	}
	if err := configureHost(hostNSPath, addrs, gw); err != nil {
		return nil, gw, err
	}
	return addrs, gw, nil
}

// WaitUp waits until the router's link to every host is operational.
func (s *Star) WaitUp(hosts []harness.HostSpec) error {
	for _, hs := range hosts {
		if err := waitOperUp(s.rh, hs.Name); err != nil {
			return fmt.Errorf("router: %w", err)
		}
	}
	return nil
}

// addVeth creates the pair from the router's namespace: <host> stays in the router, eth0 is placed
// directly into the host's namespace, so neither end ever exists in the root namespace.
func (s *Star) addVeth(i int, host, hostNSPath string) error {
	fd, err := unix.Open(hostNSPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", hostNSPath, err)
	}
	defer unix.Close(fd)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host, Index: routerLinkIndex0 + i},
		PeerName: HostLink, PeerNamespace: netlink.NsFd(fd)}
	// No teardown step of its own: both ends live in lab namespaces, and the kernel destroys the pair with
	// them (deleting it explicitly would cost ~25 ms of synchronize_net per pair at every teardown).
	if err := s.rh.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s <-> %s: %w", host, HostLink, err)
	}
	return nil
}

// configureHost brings lo and eth0 up in the host, adds its addresses (the first is primary) and the route
// to the lab via the router.
func configureHost(path string, addrs []netip.Addr, gw netip.Addr) error {
	h, err := handleIn(path)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := linkUp(h, "lo"); err != nil {
		return err
	}
	eth, err := h.LinkByName(HostLink)
	if err != nil {
		return fmt.Errorf("find %s: %w", HostLink, err)
	}
	for _, a := range addrs {
		if err := h.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(a)}); err != nil {
			return fmt.Errorf("add address %s: %w", a, err)
		}
	}
	if err := h.LinkSetUp(eth); err != nil {
		return fmt.Errorf("up %s: %w", HostLink, err)
	}
	route := &netlink.Route{LinkIndex: eth.Attrs().Index, Gw: net.IP(gw.AsSlice()),
		Dst: &net.IPNet{IP: net.IP(labNet.Addr().AsSlice()), Mask: net.CIDRMask(labNet.Bits(), 32)}}
	if err := h.RouteAdd(route); err != nil {
		return fmt.Errorf("add route %s via %s: %w", labNet, gw, err)
	}
	return waitOperUp(h, HostLink)
}

// waitOperUp polls until the link is operationally up (carrier on, qdisc attached): until then the kernel
// drops what the host sends, which would show up as spurious 1 s connect delays in the first results.
func waitOperUp(h *netlink.Handle, name string) error {
	deadline := time.Now().Add(linkUpTimeout)
	for {
		l, err := h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("find %s: %w", name, err)
		}
		if l.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("link %s not up after %s (state %s)", name, linkUpTimeout, l.Attrs().OperState)
		}
		time.Sleep(time.Millisecond)
	}
}

// handleIn opens a netlink handle whose socket lives in the namespace at path (a named namespace or a
// container's /proc/<pid>/ns/net): it is created on a fresh thread switched into it (the Do pattern, see
// harness.DoIn) and stays bound to it after the thread switches back.
func handleIn(path string) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := harness.DoIn(path, func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", path, err)
	}
	return h, nil
}

func linkUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("up %s: %w", name, err)
	}
	return nil
}

// hostAddr is 198.18.i.n.
func hostAddr(i, n int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(i), byte(n)}) }

func ipNet(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(24, 32)}
}

func numAddrs(hs harness.HostSpec) int { return max(hs.NumAddrs, 1) }
