package docker

import (
	"fmt"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/netns"
)

// The lab network is harness/netns's star, built by the same code (netns.Star): host i (0-based, topology
// order) has eth0 with 198.18.i.2 .. 198.18.i.(1+NumAddrs)/24; the router has 198.18.i.1/24 on a link
// named after the host; hosts route 198.18.0.0/15 via their router address and have no default route.
// The veth pairs are created from the router container's namespace with their peer placed straight into
// the host container's, so nothing of the lab exists in the root network namespace (no Docker network, no
// bridge, no iptables or conntrack on the data path), and the kernel destroys the pairs with the
// containers.
const (
	// RouterName is the router's host name; its container is <prefix>-router.
	RouterName = netns.RouterName
	// HostLink is the name of every host's link to the router.
	HostLink = netns.HostLink
)

// link builds the star: one veth pair per host between the router and the host.
func (b *builder) link(router *Host, hosts []*Host, topo harness.Topology) error {
	star, err := netns.OpenStar(router.nsPath)
	if err != nil {
		return err
	}
	defer star.Close()
	b.env.Router = router
	for i, hs := range topo.Hosts {
		addrs, gw, err := star.LinkHost(i, hs, hosts[i].nsPath)
		if err != nil {
			return fmt.Errorf("host %s: %w", hs.Name, err)
		}
		hosts[i].addrs = addrs
		router.addrs = append(router.addrs, gw)
		b.env.Hosts[hs.Name] = hosts[i]
		b.env.RouterLink[hs.Name] = hs.Name
	}
	return star.WaitUp(topo.Hosts)
}
