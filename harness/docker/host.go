package docker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/faultlab/faultlab/harness"
	"golang.org/x/sys/unix"
)

// stopGrace is how long a process started in a host gets between SIGTERM and SIGKILL at teardown.
const stopGrace = 2 * time.Second

// Host is a lab host (or the router) backed by a container. Its network namespace is entered from the
// host through the container's init PID, exactly like a netns host; processes are started by the lab
// itself inside the container's mount, network, UTS and IPC namespaces (see Start).
type Host struct {
	name    string
	addrs   []netip.Addr
	image   string
	id      string // container ID
	pid     int    // host PID of the container's init (docker-init)
	nsPath  string // /proc/<pid>/ns/net
	dir     string
	cleanup *harness.Cleanup
}

var _ harness.ImageHost = (*Host)(nil)

// Name is the host's name in the topology ("router" for the router).
func (h *Host) Name() string { return h.name }

// Addrs are the host's lab addresses on eth0, primary first (the router's are its per-link gateways, in
// topology order).
func (h *Host) Addrs() []netip.Addr { return slices.Clone(h.addrs) }

// Image is the container's image.
func (h *Host) Image() string { return h.image }

// ContainerID is the Docker container's ID.
func (h *Host) ContainerID() string { return h.id }

// PID is the host PID of the container's init process, whose namespaces the lab enters.
func (h *Host) PID() int { return h.pid }

// NetnsPath is /proc/<container init PID>/ns/net.
func (h *Host) NetnsPath() string { return h.nsPath }

// Do runs fn on a fresh OS thread inside the container's network namespace (see harness.DoIn): sockets,
// sysctls, nft rules and qdiscs work as on a netns host. The thread keeps the lab's filesystem.
func (h *Host) Do(fn func() error) error { return harness.DoIn(h.nsPath, fn) }

// Start starts a supervised process inside the container: the lab forks it, as on a netns host, from a
// thread that has entered the container's mount, network, UTS and IPC namespaces, so the process runs the
// image's binaries (argv[0] is resolved in the container's filesystem) and sees the run directory, which
// is bind-mounted at the same path. It is the lab's own child: its PID is a host PID (the container shares
// the host's PID namespace, so haproxy's -sf <pids> and /proc lookups agree), the lab reaps it, and it is
// stopped by PID (SIGTERM, then SIGKILL to its group after 2 s) when the environment closes, before the
// container is removed. It stays in the lab's cgroup with the lab's capabilities and open-files limit
// (not the container's: `docker top` does not list it, and the container's seccomp and AppArmor profiles
// do not apply). Its working directory and the files in its argv must lie under the environment's
// directory, the only host directory the container sees (its log file is opened by the lab). Its log goes
// to spec.LogDir, by default the environment's directory.
func (h *Host) Start(ctx context.Context, spec harness.ProcSpec) (*harness.Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start %s on %s: %w", spec.Name, h.name, err)
	}
	if spec.LogDir == "" {
		spec.LogDir = h.dir
	}
	if len(spec.Argv) > 0 && !strings.Contains(spec.Argv[0], "/") {
		path, err := h.lookPath(spec.Argv[0])
		if err != nil {
			return nil, err
		}
		spec.Argv = append([]string{path}, spec.Argv[1:]...)
	}
	p, err := harness.StartProcess(h.enter, spec)
	if err != nil {
		return nil, fmt.Errorf("host %s (image %s): %w", h.name, h.image, err)
	}
	h.cleanup.Add(fmt.Sprintf("stop %s (pid %d) on %s", p.Name, p.PID, h.name), func() error {
		return p.Stop(stopGrace)
	})
	return p, nil
}

// Run runs a short command inside the container (as Start does) and returns its combined output, e.g.
// `haproxy -v` for the image's version. A failure is an *harness.ExecError carrying the output.
func (h *Host) Run(ctx context.Context, argv ...string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("run: empty argv")
	}
	bin := argv[0]
	if !strings.Contains(bin, "/") {
		var err error
		if bin, err = h.lookPath(bin); err != nil {
			return "", err
		}
	}
	cmd := exec.CommandContext(ctx, bin, argv[1:]...)
	cmd.Env = []string{containerPath, "HOME=/root"}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := h.enter(cmd.Start); err != nil {
		return "", fmt.Errorf("host %s: run %s: %w", h.name, argv[0], err)
	}
	if err := cmd.Wait(); err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return out.String(), &harness.ExecError{Argv: argv, ExitCode: code, Stderr: strings.TrimSpace(out.String())}
	}
	return out.String(), nil
}

// containerPath is the PATH of processes started in a container (as harness.StartProcess sets it).
const containerPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPath finds a command in the container's filesystem, in containerPath.
func (h *Host) lookPath(name string) (string, error) {
	var path string
	err := h.enter(func() error {
		for _, d := range strings.Split(strings.TrimPrefix(containerPath, "PATH="), ":") {
			var st unix.Stat_t
			p := d + "/" + name
			if unix.Stat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o111 != 0 {
				path = p
				return nil
			}
		}
		return fmt.Errorf("%s not found in the PATH of image %s", name, h.image)
	})
	if err != nil {
		return "", fmt.Errorf("host %s: %w", h.name, err)
	}
	return path, nil
}

// containerNamespaces are the namespaces a process started in a host joins, in setns order. The PID
// namespace is the host's (PidMode host), the user namespace the lab's own.
var containerNamespaces = []struct {
	file string
	flag int
}{
	{"ipc", unix.CLONE_NEWIPC},
	{"uts", unix.CLONE_NEWUTS},
	{"net", unix.CLONE_NEWNET},
	{"mnt", unix.CLONE_NEWNS},
}

// enter runs fn on a fresh OS thread switched into the container's namespaces; a child forked by fn
// starts inside them. Entering a mount namespace needs a thread with its own filesystem attributes
// (unshare CLONE_FS) and moves its root and working directory into the container, which cannot be undone
// cleanly: the goroutine never unlocks its thread, so the runtime discards the thread when fn returns and
// no other goroutine ever runs on it.
func (h *Host) enter(fn func() error) error {
	fds := make([]int, 0, len(containerNamespaces))
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, ns := range containerNamespaces {
		path := fmt.Sprintf("/proc/%d/ns/%s", h.pid, ns.file)
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s (is container %s running?): %w", path, h.name, err)
		}
		fds = append(fds, fd)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare filesystem attributes: %w", err)
			return
		}
		for i, ns := range containerNamespaces {
			if err := unix.Setns(fds[i], ns.flag); err != nil {
				errc <- fmt.Errorf("enter %s namespace of container %s: %w", ns.file, h.name, err)
				return
			}
		}
		errc <- fn()
	}()
	return <-errc
}
