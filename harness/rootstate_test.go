package harness_test

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/testutil"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
)

// TestSnapshotRootStable: two snapshots of an untouched root namespace are equal (nothing compared varies
// by itself), and the snapshot sees the root's state.
func TestSnapshotRootStable(t *testing.T) {
	testutil.RequireRoot(t)
	a, err := harness.SnapshotRoot()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	b, err := harness.SnapshotRoot()
	if err != nil {
		t.Fatal(err)
	}
	if d := harness.Diff(a, b); len(d) > 0 {
		t.Errorf("root snapshots differ:\n%s", strings.Join(d, "\n"))
	}
	if a.Sysctls["net.ipv4.ip_forward"] == "" || a.Sysctls["net.core.somaxconn"] == "" {
		t.Errorf("sysctls missing: %d read", len(a.Sysctls))
	}
	if _, ok := a.Links["lo"]; !ok {
		t.Errorf("no lo among root links %v", a.Links)
	}
	if !slices.Contains(a.Unreadable, "net.ipv4.route.flush") {
		t.Errorf("write-only net.ipv4.route.flush not reported unreadable: %v", a.Unreadable)
	}
	t.Logf("%d sysctls, %d unreadable, %d nft objects, %d links, %d addrs, %d routes, %d qdiscs",
		len(a.Sysctls), len(a.Unreadable), len(a.Nft), len(a.Links), len(a.Addrs), len(a.Routes), len(a.Qdiscs))
}

func TestDiff(t *testing.T) {
	a := harness.RootState{
		Sysctls: map[string]string{"net.ipv4.tcp_tw_reuse": "2", "net.core.somaxconn": "4096"},
		Links:   map[string]string{"lo": "type device", "docker0": "type bridge"},
		Qdiscs:  map[string]string{"eth0 parent root handle 0:0": "noqueue"},
	}
	b := harness.RootState{
		Sysctls: map[string]string{"net.ipv4.tcp_tw_reuse": "1", "net.core.somaxconn": "4096"},
		Links:   map[string]string{"lo": "type device", "veth1": "type veth"},
		Qdiscs:  map[string]string{"eth0 parent root handle 0:0": "noqueue"},
		Nft:     map[string]string{"table inet fl-x": "flags 0x0"},
	}
	want := []string{
		"sysctl net.ipv4.tcp_tw_reuse: 2 -> 1",
		"nft table inet fl-x: added (flags 0x0)",
		"link docker0: removed (was type bridge)",
		"link veth1: added (type veth)",
	}
	if got := harness.Diff(a, b); !slices.Equal(got, want) {
		t.Errorf("Diff:\n got %q\nwant %q", got, want)
	}
	if got := harness.Diff(a, a); len(got) != 0 {
		t.Errorf("Diff(a, a) = %q", got)
	}
}

// TestSnapshotSensitive changes a lab host's namespace in every way a snapshot covers and checks that Diff
// reports each change (the root namespace itself must never be changed, so its snapshot's sensitivity is
// shown here).
func TestSnapshotSensitive(t *testing.T) {
	env := buildLab(t)
	h := labHost(t, env, "backend")
	before, err := harness.SnapshotNetns(h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := harness.ApplySysctls(h, map[string]string{"net.ipv4.tcp_tw_reuse": "0"}); err != nil {
		t.Fatal(err)
	}
	err = h.Do(func() error {
		c, err := nftables.New(nftables.AsLasting())
		if err != nil {
			return err
		}
		defer c.CloseLasting()
		tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "fl-probe"})
		policy := nftables.ChainPolicyAccept
		ch := c.AddChain(&nftables.Chain{Name: "fwd", Table: tbl, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &policy})
		c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{&expr.Counter{}}})
		if err := c.Flush(); err != nil {
			return err
		}
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		tbf := &netlink.Tbf{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: eth.Attrs().Index, Handle: netlink.MakeHandle(1, 0),
			Parent: netlink.HANDLE_ROOT}, Rate: 1 << 20, Limit: 1 << 16, Buffer: 1 << 14}
		if err := netlink.QdiscAdd(tbf); err != nil {
			return err
		}
		return netlink.AddrAdd(eth, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(198, 18, 1, 99), Mask: net.CIDRMask(24, 32)}})
	})
	if err != nil {
		t.Fatal(err)
	}
	after, err := harness.SnapshotNetns(h)
	if err != nil {
		t.Fatal(err)
	}
	d := strings.Join(harness.Diff(before, after), "\n")
	for _, want := range []string{"sysctl net.ipv4.tcp_tw_reuse: 2 -> 0", "nft table inet fl-probe: added",
		"nft chain inet fl-probe fwd: added (type filter hook 2 priority 0 policy accept rules 1",
		"qdisc eth0 parent root handle 1:0: added (tbf", "addr eth0 198.18.1.99/24: added",
		"qdisc eth0 parent root handle none: removed (was noqueue"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
}
