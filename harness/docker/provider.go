// Package docker is the container provider: every host is a Docker container running its role's image
// (faultlab/haproxy, faultlab/nginx... built offline by `make images`), and a router container forwards
// between them. The network is the same star as harness/netns (see link.go): veth pairs created from the
// host through the containers' namespaces, no Docker network on the data path. Containers share the
// host's PID namespace and are entered from their init PID, so sysctls, impairments, captures, the load
// generator's sockets and process supervision work exactly as on the netns backend; only the filesystem
// (the image's binaries and libraries) differs.
//
// Everything created carries the label faultlab.run=<prefix> and is registered on the environment's
// cleanup stack as it is created; Clean sweeps what a crashed run left.
package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/netns"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"golang.org/x/sync/errgroup"
)

// Labels on every container the lab creates.
const (
	// LabelRun carries the run prefix (fl-<id>): Clean removes what carries it, and nothing else.
	LabelRun = "faultlab.run"
	// LabelHost carries the host's name in the topology ("router" for the router).
	LabelHost = "faultlab.host"
	// LabelOwner identifies the lab process (pid:start time): Clean leaves runs whose owner lives.
	LabelOwner = "faultlab.owner"
)

const (
	// teardownTimeout bounds the removal of one container at teardown.
	teardownTimeout = 30 * time.Second
	// createParallel is how many containers are created at once.
	createParallel = 8
)

// Options configure the provider.
type Options struct {
	// Images maps a host name to its image (e.g. "proxy": HAProxyImage); other hosts use DefaultImage.
	Images map[string]string
	// DefaultImage is the image of hosts not in Images (default ToolsImage).
	DefaultImage string
	// RouterImage is the router's image (default ToolsImage).
	RouterImage string
	// Logger receives testcontainers' messages (default: discarded).
	Logger tclog.Logger
}

// Provider builds labs out of containers.
type Provider struct {
	opts Options
}

var _ harness.Provider = (*Provider)(nil)

// New returns the container provider.
func New(opts Options) *Provider {
	if opts.DefaultImage == "" {
		opts.DefaultImage = ToolsImage
	}
	if opts.RouterImage == "" {
		opts.RouterImage = ToolsImage
	}
	if opts.Logger == nil {
		opts.Logger = tclog.NewNoopLogger()
	}
	return &Provider{opts: opts}
}

// Name is "docker".
func (p *Provider) Name() string { return "docker" }

// ImageOf is the image host runs.
func (p *Provider) ImageOf(host string) string {
	if img, ok := p.opts.Images[host]; ok && img != "" {
		return img
	}
	return p.opts.DefaultImage
}

// Build checks the images, starts the router and host containers (in parallel), links and addresses
// them, enables forwarding in the router and applies each host's sysctls (verified). Every container is
// registered on env.Cleanup as soon as it is created; on error Build has already closed env (Close is
// idempotent) and returns it with the error. A missing lab image is a *MissingImageError naming the
// command that builds it.
func (p *Provider) Build(ctx context.Context, prefix string, topo harness.Topology, dir string) (
	env *harness.Env, err error) {
	env = &harness.Env{Prefix: prefix, Dir: dir, Provider: p.Name(), Hosts: map[string]harness.Host{},
		RouterLink: map[string]string{}, Cleanup: &harness.Cleanup{}}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("build docker lab %s: %w", prefix, err), env.Close())
		}
	}()
	if err := netns.Preflight(prefix, topo); err != nil {
		return env, err
	}
	if dir != "" {
		if env.Dir, err = filepath.Abs(dir); err != nil {
			return env, err
		}
		if err := os.MkdirAll(env.Dir, 0o755); err != nil {
			return env, err
		}
	}
	c, err := newClient()
	if err != nil {
		return env, err
	}
	defer c.Close()
	images := []string{p.opts.RouterImage}
	for _, hs := range topo.Hosts {
		images = append(images, p.ImageOf(hs.Name))
	}
	if err := checkImages(ctx, c, images); err != nil {
		return env, err
	}
	if err := disableRyukIfAbsent(ctx, c); err != nil {
		return env, err
	}
	owner, err := ownerLabel(os.Getpid())
	if err != nil {
		return env, err
	}
	b := &builder{p: p, env: env, prefix: prefix, owner: owner, teardown: newTeardown(env.Cleanup)}
	return env, b.build(ctx, topo)
}

// builder carries one Build's state.
type builder struct {
	p        *Provider
	env      *harness.Env
	prefix   string
	owner    string
	teardown *teardown
}

func (b *builder) build(ctx context.Context, topo harness.Topology) error {
	hosts := make([]*Host, len(topo.Hosts))
	var router *Host
	// One failure does not cancel the others: a creation interrupted half-way could leave a container
	// the daemon made but testcontainers never returned, which only Clean would find.
	var g errgroup.Group
	g.SetLimit(createParallel)
	g.Go(func() (err error) {
		router, err = b.runContainer(ctx, RouterName, b.p.opts.RouterImage)
		return err
	})
	for i, hs := range topo.Hosts {
		g.Go(func() (err error) {
			hosts[i], err = b.runContainer(ctx, hs.Name, b.p.ImageOf(hs.Name))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := b.link(router, hosts, topo); err != nil {
		return err
	}
	if _, err := harness.ApplySysctls(router, map[string]string{"net.ipv4.ip_forward": "1"}); err != nil {
		return err
	}
	for i, hs := range topo.Hosts {
		if len(hs.Sysctls) == 0 {
			continue
		}
		if _, err := harness.ApplySysctls(hosts[i], hs.Sysctls); err != nil {
			return err
		}
	}
	return nil
}

// runContainer starts the container of one host: no network (the lab links it), the host's PID
// namespace, docker-init as init, NET_ADMIN, the run directory bind-mounted at the same path, and a
// command that only keeps it alive (the lab starts the daemons itself, see Host.Start).
func (b *builder) runContainer(ctx context.Context, name, image string) (*Host, error) {
	cname := b.prefix + "-" + name
	ctr, err := testcontainers.Run(ctx, image,
		testcontainers.WithLogger(b.p.opts.Logger),
		testcontainers.WithName(cname),
		testcontainers.WithCmd("sleep", "infinity"),
		testcontainers.WithLabels(map[string]string{LabelRun: b.prefix, LabelHost: name, LabelOwner: b.owner}),
		testcontainers.WithConfigModifier(func(c *container.Config) { c.Hostname = name }),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.NetworkMode = "none"
			hc.PidMode = "host"
			hc.Init = ptr(true)
			hc.CapAdd = []string{"NET_ADMIN"}
			if b.env.Dir != "" {
				hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: b.env.Dir,
					Target: b.env.Dir})
			}
		}))
	b.teardown.add(cname, ctr) // before checking err: a half-created container is removed too
	if err != nil {
		return nil, fmt.Errorf("run container %s (%s): %w", cname, image, err)
	}
	st, err := ctr.State(ctx)
	if err != nil {
		return nil, fmt.Errorf("inspect container %s: %w", cname, err)
	}
	if !st.Running || st.Pid == 0 {
		return nil, fmt.Errorf("container %s (%s) is not running (status %s, exit %d)", cname, image,
			st.Status, st.ExitCode)
	}
	return &Host{name: name, image: image, id: ctr.GetContainerID(), pid: st.Pid,
		nsPath: fmt.Sprintf("/proc/%d/ns/net", st.Pid), dir: b.env.Dir, cleanup: b.env.Cleanup}, nil
}

// teardown removes a build's containers in parallel, as one cleanup step registered before the first
// container is created: each container joins it the moment testcontainers returns it.
type teardown struct {
	mu   sync.Mutex
	ctrs map[string]*testcontainers.DockerContainer
}

func newTeardown(c *harness.Cleanup) *teardown {
	t := &teardown{ctrs: map[string]*testcontainers.DockerContainer{}}
	c.Add("remove containers", t.run)
	return t
}

func (t *teardown) add(name string, ctr *testcontainers.DockerContainer) {
	if ctr == nil {
		return
	}
	t.mu.Lock()
	t.ctrs[name] = ctr
	t.mu.Unlock()
}

// run removes every container (killed at once: a zero stop timeout), ignoring those already gone;
// idempotent.
func (t *teardown) run() error {
	t.mu.Lock()
	ctrs := t.ctrs
	t.ctrs = map[string]*testcontainers.DockerContainer{}
	t.mu.Unlock()
	var (
		g    errgroup.Group
		mu   sync.Mutex
		errs []error
	)
	g.SetLimit(createParallel)
	for name, ctr := range ctrs {
		g.Go(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
			defer cancel()
			if err := ctr.Terminate(ctx, testcontainers.StopTimeout(0)); err != nil && !isNotFound(err) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("remove container %s: %w", name, err))
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

func ptr[T any](v T) *T { return &v }
