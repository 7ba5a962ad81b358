// Package netns is the network-namespace provider: every host is a named network namespace, linked by a
// veth pair to a router namespace that forwards between them (a star). Nothing is created in, or changed
// in, the root network namespace: veth pairs are created from the router's namespace with their peer placed
// straight into the host's, and every sysctl is written on a thread inside a lab namespace.
//
// Addressing: host i (0-based, topology order) has eth0 with 198.18.i.2 .. 198.18.i.(1+NumAddrs)/24, the
// router has 198.18.i.1/24 on the link named after the host, and hosts route 198.18.0.0/15 via their
// router address. There is no default route, so no lab traffic can leave the lab.
package netns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"

	"github.com/faultlab/faultlab/harness"
)

const (
	// RouterName is the router's host name; its namespace is <prefix>-router.
	RouterName = "router"
	// HostLink is the name of every host's link to the router.
	HostLink = "eth0"
	// MaxHosts is the number of /24 subnets available in 198.18.0.0/16.
	MaxHosts = 256
	// MaxAddrs is the number of addresses a host can have in its /24 (.2 to .254).
	MaxAddrs = 253
)

var hostNameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,14}$`)

// Provider builds labs out of network namespaces.
type Provider struct{}

// New returns the network-namespace provider.
func New() *Provider { return &Provider{} }

var _ harness.Provider = (*Provider)(nil)

// Name is "netns".
func (p *Provider) Name() string { return "netns" }

// Build creates the router and host namespaces, links and addresses them, enables forwarding in the router
// and applies each host's sysctls (verified). Every created thing is registered on env.Cleanup as it is
// created; on error Build has already closed env (Close is idempotent) and returns it with the error.
func (p *Provider) Build(ctx context.Context, prefix string, topo harness.Topology, dir string) (
	env *harness.Env, err error) {
	env = &harness.Env{Prefix: prefix, Dir: dir, Provider: p.Name(), Hosts: map[string]harness.Host{},
		RouterLink: map[string]string{}, Cleanup: &harness.Cleanup{}}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("build netns lab %s: %w", prefix, err), env.Close())
		}
	}()
	if err := Preflight(prefix, topo); err != nil {
		return env, err
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return env, err
		}
	}
	b := &builder{ctx: ctx, env: env, prefix: prefix, dir: dir}
	return env, b.build(topo)
}

// builder carries one Build's state.
type builder struct {
	ctx    context.Context
	env    *harness.Env
	prefix string
	dir    string
	router *Host
	star   *Star // links the hosts to the router
}

func (b *builder) build(topo harness.Topology) error {
	if err := lockRun(b.env.Cleanup, b.prefix); err != nil {
		return err
	}
	rns, err := createNamespace(b.env.Cleanup, b.prefix+"-"+RouterName, "")
	if err != nil {
		return err
	}
	if err := rns.lock(); err != nil {
		return err
	}
	b.router = b.newHost(RouterName, rns.path, nil)
	b.env.Router = b.router
	parent, err := b.ownEhash()
	if err != nil {
		return err
	}
	hostNS := make([]*namespace, len(topo.Hosts))
	for i, hs := range topo.Hosts {
		if hostNS[i], err = createNamespace(b.env.Cleanup, b.prefix+"-"+hs.Name, parent); err != nil {
			return err
		}
	}
	if err := b.ctx.Err(); err != nil {
		return err
	}
	if b.star, err = OpenStar(rns.path); err != nil {
		return err
	}
	defer b.star.Close()
	for i, hs := range topo.Hosts {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		if err := b.addHost(i, hs, hostNS[i]); err != nil {
			return fmt.Errorf("host %s: %w", hs.Name, err)
		}
	}
	if err := b.star.WaitUp(topo.Hosts); err != nil {
		return err
	}
	if _, err := harness.ApplySysctls(b.router, map[string]string{"net.ipv4.ip_forward": "1"}); err != nil {
		return err
	}
	for _, hs := range topo.Hosts {
		if len(hs.Sysctls) == 0 {
			continue
		}
		if _, err := harness.ApplySysctls(b.env.Hosts[hs.Name].(*Host), hs.Sysctls); err != nil {
			return err
		}
	}
	return nil
}

// ChildEhashEntries is the size of the hash of established and TIME_WAIT sockets each host namespace gets
// for itself (2 MiB of buckets). By default every namespace shares the root namespace's hash, so a dump of
// one host's sockets (the state sampler, four times a second) walks every socket of the machine: with the
// long Exhaustion mode's 150,000 TIME_WAIT sockets on the client, the proxy's dumps took 100-500 ms and the
// lab fell behind its rate. Linux 6.1+ gives a namespace its own hash when the namespace that creates it
// sets net.ipv4.tcp_child_ehash_entries: the router's namespace sets it and creates the hosts' namespaces.
const ChildEhashEntries = "262144"

// ownEhash sets tcp_child_ehash_entries in the router's namespace and returns its path, the parent to create
// the hosts' namespaces from; "" (a shared hash) on a kernel without the sysctl.
func (b *builder) ownEhash() (string, error) {
	const name = "net.ipv4.tcp_child_ehash_entries"
	missing := false
	if err := b.router.Do(func() error {
		_, err := os.Stat("/proc/sys/net/ipv4/tcp_child_ehash_entries")
		missing = errors.Is(err, os.ErrNotExist)
		return nil
	}); err != nil {
		return "", err
	}
	if missing {
		return "", nil
	}
	if _, err := harness.ApplySysctls(b.router, map[string]string{name: ChildEhashEntries}); err != nil {
		return "", err
	}
	return b.router.path, nil
}

func (b *builder) newHost(name, path string, addrs []netip.Addr) *Host {
	return &Host{name: name, addrs: addrs, path: path, dir: b.dir, cleanup: b.env.Cleanup}
}

// addHost links host i to the router and addresses both ends.
func (b *builder) addHost(i int, hs harness.HostSpec, ns *namespace) error {
	addrs, gw, err := b.star.LinkHost(i, hs, ns.path)
	if err != nil {
		return err
	}
	b.env.Hosts[hs.Name] = b.newHost(hs.Name, ns.path, addrs)
	b.env.RouterLink[hs.Name] = hs.Name
	b.router.addrs = append(b.router.addrs, gw)
	return nil
}

// Preflight is what every provider's Build does before it creates anything: Validate the prefix and
// topology, check for root (harness.ErrNotPrivileged), and raise the open-files limit.
func Preflight(prefix string, topo harness.Topology) error {
	if err := Validate(prefix, topo); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return harness.ErrNotPrivileged
	}
	return raiseNofile()
}

// Validate checks a prefix and topology before anything is created; all problems are returned together.
func Validate(prefix string, topo harness.Topology) error {
	var errs []error
	if !strings.HasPrefix(prefix, harness.PrefixBase) || len(prefix) == len(harness.PrefixBase) ||
		strings.ContainsAny(prefix, "/ \t\n") {
		errs = append(errs, fmt.Errorf("prefix %q: must be %s<run id> without slashes or spaces",
			prefix, harness.PrefixBase))
	}
	if n := len(topo.Hosts); n == 0 || n > MaxHosts {
		errs = append(errs, fmt.Errorf("topology: %d hosts, want 1 to %d", n, MaxHosts))
	}
	seen := map[string]bool{}
	for i, hs := range topo.Hosts {
		switch {
		case !hostNameRE.MatchString(hs.Name):
			errs = append(errs, fmt.Errorf("host[%d] %q: name must match %s (it names a link)", i, hs.Name,
				hostNameRE))
		case hs.Name == RouterName || hs.Name == "lo":
			errs = append(errs, fmt.Errorf("host[%d] %q: name is reserved", i, hs.Name))
		case seen[hs.Name]:
			errs = append(errs, fmt.Errorf("host[%d] %q: duplicate name", i, hs.Name))
		}
		seen[hs.Name] = true
		if hs.NumAddrs < 0 || hs.NumAddrs > MaxAddrs {
			errs = append(errs, fmt.Errorf("host[%d] %q: %d addresses, want 1 to %d", i, hs.Name, hs.NumAddrs,
				MaxAddrs))
		}
	}
	return errors.Join(errs...)
}

var (
	nofileOnce sync.Once
	nofileErr  error
)

// raiseNofile sets the lab process's open-files soft limit to its hard limit, once; the processes the lab
// starts inherit it, in namespaces or in containers (there instead of dockerd's limit, which containers
// cannot raise); syscall.Setrlimit also stops os/exec from restoring the original soft limit in children.
func raiseNofile() error {
	nofileOnce.Do(func() {
		var lim syscall.Rlimit
		if nofileErr = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); nofileErr != nil {
			return
		}
		lim.Cur = lim.Max
		nofileErr = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	})
	if nofileErr != nil {
		return fmt.Errorf("raise open-files limit: %w", nofileErr)
	}
	return nil
}
