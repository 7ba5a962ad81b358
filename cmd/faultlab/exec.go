package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/faultlab/faultlab/harness"
	"golang.org/x/sys/unix"
)

// findTimeout bounds the search for the host (the Docker engine's answers).
const findTimeout = 10 * time.Second

const execUsage = `usage: faultlab exec [--run ID] HOST [--] CMD [ARGS...]

Runs CMD inside the network namespace of HOST, a host (or "router") of a running lab (faultlab up or run),
on either backend: a netns lab's namespace, or a docker lab's container (its network namespace only).
CMD is this machine's program, not the container's: ss, tcpdump, curl, nft and ip work the same way on
both backends and see the host's sockets, links and addresses. For the container's own filesystem and
binaries use 'docker exec fl-ID-HOST CMD'. Put CMD after -- when it has flags of its own.
`

// execArgs is a parsed exec command line.
type execArgs struct {
	run  string // run id or prefix; "" = the newest lab that has host
	host string
	argv []string
}

// cmdExec replaces this process with CMD running inside HOST's network namespace.
func cmdExec(ctx context.Context, args []string) error {
	a, err := parseExecArgs(args, os.Stderr)
	if err != nil {
		return err
	}
	bin, err := exec.LookPath(a.argv[0])
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, findTimeout)
	h, err := findHost(ctx, a.run, a.host, os.Stderr)
	cancel()
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	return execIn(h, bin, a.argv)
}

// parseExecArgs parses exec's flags (anywhere before the command) and positional arguments.
func parseExecArgs(args []string, out io.Writer) (*execArgs, error) {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	fs.SetOutput(out)
	a := &execArgs{}
	fs.StringVar(&a.run, "run", "", "run id, as printed by up and run (default: the newest lab that has HOST)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), execUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	if err := parseInterspersed(fs, args); err != nil {
		if strings.Contains(err.Error(), "not defined") {
			return nil, fmt.Errorf("exec: %w (a command with flags goes after --: faultlab exec HOST -- CMD ARGS...)", err)
		}
		return nil, err
	}
	rest := fs.Args()
	if len(rest) < 2 {
		fs.Usage()
		return nil, errors.New("exec: want HOST and a command")
	}
	a.host, a.argv = rest[0], rest[1:]
	return a, nil
}

// execIn replaces this process with bin running in h's network namespace. Only the network namespace is
// entered: the mount namespace (and so the filesystem and binaries) stays this machine's.
func execIn(h labHost, bin string, argv []string) error {
	runtime.LockOSThread() // this thread enters the namespace and execs; it never goes back
	fd, err := unix.Open(h.Netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("exec: open network namespace of %s: %w", h, err)
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		hint := ""
		if errors.Is(err, unix.EPERM) {
			hint = " (entering a namespace needs root)"
		}
		return fmt.Errorf("exec: enter network namespace of %s (%s): %w%s", h, h.Netns, err, hint)
	}
	unix.Close(fd)
	if err := syscall.Exec(bin, argv, os.Environ()); err != nil {
		return fmt.Errorf("exec: %s: %w", bin, err)
	}
	return nil
}

// findHost finds host among the running labs of both backends: in run when set, else the newest lab that has
// it (saying so on w when several have it).
func findHost(ctx context.Context, run, host string, w io.Writer) (labHost, error) {
	hosts, nerr := netnsLabHosts()
	dhosts, derr := dockerLabHosts(ctx)
	hosts = append(hosts, dhosts...)
	cands, err := candidates(hosts, run, host)
	if err != nil {
		// Say why a backend could not be searched only when it matters.
		return labHost{}, errors.Join(err, backendError("netns", nerr), backendError("docker", derr))
	}
	var errs []error
	ok := cands[:0]
	for _, c := range cands {
		if c.Backend == "docker" {
			if err := resolveContainer(ctx, &c); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		ok = append(ok, c)
	}
	if len(ok) == 0 {
		return labHost{}, errors.Join(errs...)
	}
	h := newest(ok)
	if len(ok) > 1 {
		var others []string
		for _, c := range ok {
			if c.Run != h.Run {
				others = append(others, c.Run)
			}
		}
		fmt.Fprintf(w, "faultlab exec: %d labs have host %s; using the newest, %s (%s, up since %s); others: %s "+
			"(choose with --run)\n", len(ok), host, h.Run, h.Backend, h.Created.Local().Format(time.DateTime),
			strings.Join(others, ", "))
	}
	return h, nil
}

func backendError(backend string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("(%s labs could not be listed: %w)", backend, err)
}

// runPrefix turns a run id as printed by up and run (abc123) into its prefix (fl-abc123); a prefix is kept.
func runPrefix(run string) string {
	if run == "" || strings.HasPrefix(run, harness.PrefixBase) {
		return run
	}
	return harness.PrefixBase + run
}
