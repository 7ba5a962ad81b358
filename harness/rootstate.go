package harness

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RootState is a read-only snapshot of the root network namespace: what the lab promises never to change.
// Every field maps a stable key to a description; Diff compares two snapshots key by key.
//
// What is left out, and why:
//   - sysctl files that cannot be read (write-only such as net.ipv4.route.flush, or EIO such as an unset
//     net.ipv6.conf.*.stable_secret): they have no value to compare; their names are in Unreadable;
//   - net.netfilter (conntrack counters change with traffic) and everything outside ipv4, ipv6 and core;
//   - nft counters and quota consumption (zeroed before hashing a rule), set elements, flowtables, objects;
//   - qdisc statistics and reference counts, link operational state and counters, neighbours, cloned routes
//     and route expiry: all change by themselves.
//
// Nothing that varies by itself was found among the remaining sysctls (see TestSnapshotRootStable);
// net.ipv4.tcp_fastopen_key and net.core.netdev_rss_key are random but fixed at boot, so they are compared.
type RootState struct {
	Sysctls    map[string]string // dotted name -> whitespace-normalised value
	Unreadable []string          // sysctl files skipped
	Nft        map[string]string // "table ip filter", "chain ip filter FORWARD", "set ip t s" -> description
	Links      map[string]string // link name -> type, index, mtu, flags, master
	Addrs      map[string]string // "link addr/len" -> flags
	Routes     map[string]string // route key (table, family, dst, ...) -> gateway/source/priority
	Qdiscs     map[string]string // "link parent handle" -> qdisc parameters
}

// sysctlRoots are the /proc/sys trees snapshotted.
var sysctlRoots = []string{"/proc/sys/net/ipv4", "/proc/sys/net/ipv6", "/proc/sys/net/core"}

// SnapshotRoot reads the root network namespace's sysctls, nftables ruleset, links, addresses, routes and
// qdiscs without changing anything. It runs on a thread in PID 1's namespace when that is readable, else on
// a thread of the lab process's own namespace.
func SnapshotRoot() (RootState, error) {
	s, err := snapshot(inRootNetns)
	if err != nil {
		return s, fmt.Errorf("snapshot root: %w", err)
	}
	return s, nil
}

// SnapshotNetns takes the same snapshot inside a lab host's namespace (e.g. to check that removing a fault
// restored the router exactly).
func SnapshotNetns(h NetnsHost) (RootState, error) {
	s, err := snapshot(h.Do)
	if err != nil {
		return s, fmt.Errorf("snapshot host %s: %w", h.Name(), err)
	}
	return s, nil
}

func snapshot(enter func(func() error) error) (RootState, error) {
	s := RootState{Sysctls: map[string]string{}, Nft: map[string]string{}, Links: map[string]string{},
		Addrs: map[string]string{}, Routes: map[string]string{}, Qdiscs: map[string]string{}}
	err := enter(func() error {
		return errors.Join(s.readSysctls(), s.readNft(), s.readNetlink())
	})
	return s, err
}

func inRootNetns(fn func() error) error {
	fd, err := unix.Open("/proc/1/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
		return DoIn("/proc/1/ns/net", fn)
	}
	return OnLockedThread(fn)
}

func (s *RootState) readSysctls() error {
	for _, root := range sysctlRoots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			name := strings.ReplaceAll(strings.TrimPrefix(path, "/proc/sys/"), "/", ".")
			b, err := os.ReadFile(path)
			if err != nil {
				s.Unreadable = append(s.Unreadable, name)
				return nil
			}
			s.Sysctls[name] = normalizeSysctl(string(b))
			return nil
		})
		if err != nil {
			return fmt.Errorf("read sysctls %s: %w", root, err)
		}
	}
	sort.Strings(s.Unreadable)
	return nil
}

func (s *RootState) readNft() error {
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return fmt.Errorf("nftables connect: %w", err)
	}
	defer c.CloseLasting()
	tables, err := c.ListTables()
	if err != nil {
		return fmt.Errorf("nftables list tables: %w", err)
	}
	for _, t := range tables {
		s.Nft["table "+tableKey(t)] = fmt.Sprintf("flags %#x", t.Flags)
		sets, err := c.GetSets(t)
		if err != nil {
			return fmt.Errorf("nftables list sets of %s: %w", tableKey(t), err)
		}
		for _, set := range sets {
			s.Nft["set "+tableKey(t)+" "+set.Name] = fmt.Sprintf("key %s data %s interval %v map %v "+
				"timeout %v", set.KeyType.Name, set.DataType.Name, set.Interval, set.IsMap, set.Timeout)
		}
	}
	chains, err := c.ListChains()
	if err != nil {
		return fmt.Errorf("nftables list chains: %w", err)
	}
	for _, ch := range chains {
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return fmt.Errorf("nftables list rules of %s %s: %w", tableKey(ch.Table), ch.Name, err)
		}
		s.Nft["chain "+tableKey(ch.Table)+" "+ch.Name] = chainDesc(ch, rules)
	}
	return nil
}

func tableKey(t *nftables.Table) string { return familyName(t.Family) + " " + t.Name }

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyNetdev:
		return "netdev"
	case nftables.TableFamilyBridge:
		return "bridge"
	}
	return fmt.Sprintf("family%d", f)
}

// chainDesc describes a chain by its hook, priority, type, policy, rule count and a hash of its rules'
// expressions (counters zeroed).
func chainDesc(ch *nftables.Chain, rules []*nftables.Rule) string {
	var b strings.Builder
	if ch.Type != "" {
		fmt.Fprintf(&b, "type %s ", ch.Type)
	}
	if ch.Hooknum != nil {
		fmt.Fprintf(&b, "hook %d ", *ch.Hooknum)
	}
	if ch.Priority != nil {
		fmt.Fprintf(&b, "priority %d ", *ch.Priority)
	}
	if ch.Policy != nil {
		policy := "drop"
		if *ch.Policy == nftables.ChainPolicyAccept {
			policy = "accept"
		}
		fmt.Fprintf(&b, "policy %s ", policy)
	}
	h := sha256.New()
	for _, r := range rules {
		for _, e := range r.Exprs {
			h.Write(exprBytes(byte(ch.Table.Family), e))
		}
		h.Write(r.UserData)
		h.Write([]byte{0xff}) // rule separator
	}
	fmt.Fprintf(&b, "rules %d sha256 %s", len(rules), hex.EncodeToString(h.Sum(nil))[:16])
	return b.String()
}

// exprBytes is an expression's netlink encoding with its dynamic state (counters, quota use) zeroed.
func exprBytes(fam byte, e expr.Any) []byte {
	switch v := e.(type) {
	case *expr.Counter:
		e = &expr.Counter{}
	case *expr.Quota:
		e = &expr.Quota{Bytes: v.Bytes, Over: v.Over}
	}
	b, err := expr.Marshal(fam, e)
	if err != nil {
		return []byte(fmt.Sprintf("%T", e))
	}
	return b
}

func (s *RootState) readNetlink() error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close()
	var links []netlink.Link
	if err := retryDump(func() (err error) { links, err = h.LinkList(); return }); err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	var errs []error
	for _, l := range links {
		a := l.Attrs()
		s.Links[a.Name] = fmt.Sprintf("type %s index %d mtu %d up %v master %d", l.Type(), a.Index, a.MTU,
			a.Flags&unix.IFF_UP != 0, a.MasterIndex)
		var qs []netlink.Qdisc
		if err := retryDump(func() (err error) { qs, err = h.QdiscList(l); return }); err != nil {
			errs = append(errs, fmt.Errorf("list qdiscs of %s: %w", a.Name, err))
		}
		for _, q := range qs {
			qa := q.Attrs()
			key := fmt.Sprintf("%s parent %s handle %s", a.Name, netlink.HandleStr(qa.Parent),
				netlink.HandleStr(qa.Handle))
			qa.Statistics, qa.Refcnt = nil, 0
			j, _ := json.Marshal(q)
			s.Qdiscs[key] = q.Type() + " " + string(j)
		}
	}
	var addrs []netlink.Addr
	if err := retryDump(func() (err error) { addrs, err = h.AddrList(nil, netlink.FAMILY_ALL); return }); err != nil {
		errs = append(errs, fmt.Errorf("list addresses: %w", err))
	}
	for _, a := range addrs {
		s.Addrs[names[a.LinkIndex]+" "+a.IPNet.String()] = fmt.Sprintf("scope %d flags %#x", a.Scope, a.Flags)
	}
	var routes []netlink.Route
	err = retryDump(func() (err error) {
		routes, err = h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{}, netlink.RT_FILTER_TABLE)
		return
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("list routes: %w", err))
	}
	for _, r := range routes {
		key := fmt.Sprintf("table %d family %d type %d dst %v dev %s tos %d priority %d", r.Table, r.Family,
			r.Type, r.Dst, names[r.LinkIndex], r.Tos, r.Priority)
		s.Routes[key] = fmt.Sprintf("gw %v src %v proto %d scope %d multipath %d", r.Gw, r.Src, r.Protocol,
			r.Scope, len(r.MultiPath))
	}
	return errors.Join(errs...)
}

// retryDump retries a netlink dump the kernel interrupted because the table changed under it.
func retryDump(f func() error) error {
	var err error
	for range 5 {
		if err = f(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
	}
	return err
}

// Diff lists the differences from a to b, one human-readable line each ("sysctl net.ipv4.x: 0 -> 1",
// "link veth0: added (...)"), sorted. Equal snapshots give none.
func Diff(a, b RootState) []string {
	var out []string
	out = append(out, diffMap("sysctl", a.Sysctls, b.Sysctls)...)
	out = append(out, diffMap("nft", a.Nft, b.Nft)...)
	out = append(out, diffMap("link", a.Links, b.Links)...)
	out = append(out, diffMap("addr", a.Addrs, b.Addrs)...)
	out = append(out, diffMap("route", a.Routes, b.Routes)...)
	out = append(out, diffMap("qdisc", a.Qdiscs, b.Qdiscs)...)
	ua, ub := map[string]string{}, map[string]string{}
	for _, n := range a.Unreadable {
		ua[n] = "unreadable"
	}
	for _, n := range b.Unreadable {
		ub[n] = "unreadable"
	}
	out = append(out, diffMap("sysctl", ua, ub)...)
	return out
}

func diffMap(kind string, a, b map[string]string) []string {
	var out []string
	for k, va := range a {
		vb, ok := b[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s %s: removed (was %s)", kind, k, va))
		case va != vb:
			out = append(out, fmt.Sprintf("%s %s: %s -> %s", kind, k, va, vb))
		}
	}
	for k, vb := range b {
		if _, ok := a[k]; !ok {
			out = append(out, fmt.Sprintf("%s %s: added (%s)", kind, k, vb))
		}
	}
	sort.Strings(out)
	return out
}
