// Package services runs the lab's daemons inside hosts: one driver per file (haproxy, nginx, mariadb,
// tengine), and Registry, the table from a scenario's service kind to its driver. Each driver writes its
// generated configuration (text/template) into the service's own directory, so a user can copy it, starts its
// processes through the host, tracks them by PID and never finds a process by name.
package services

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/faultlab/faultlab/harness"
	"golang.org/x/sys/unix"
)

// Service is a daemon of the lab.
type Service interface {
	Name() string
	// Start starts the daemon and returns once it accepts connections.
	Start(ctx context.Context) error
	// Stop stops every process the service started (idempotent).
	Stop(ctx context.Context) error
}

// Servers is a service that stands for several servers (one nginx process listening on many address:port
// pairs): a proxy naming it as a backend gets every one of them. A service without it is one server, at the
// address it was configured with.
type Servers interface {
	Servers() []netip.AddrPort
}

// Versioned is a service that knows the version of its binary.
type Versioned interface {
	Version() string
}

// Reloadable is a service a reload storm can reload.
type Reloadable interface {
	// Reload reloads the service with its strategy and returns when the new process (or worker) holds its
	// listening socket.
	Reload(ctx context.Context) (ReloadResult, error)
	// Procs is the number of the service's proxy processes alive now, old and new (for a master-worker
	// service: the master's workers, without the master).
	Procs() int
}

// ReloadResult describes one completed reload.
type ReloadResult struct {
	Start time.Time // when the reload was triggered
	End   time.Time // when a new process (or worker) held the listening socket
	// NewPIDs are the processes (or workers) the reload created.
	NewPIDs []int
}

// stopGrace is how long Stop waits after SIGTERM before it kills a process group.
const stopGrace = 5 * time.Second

// pollInterval bounds the wait between two checks of a condition (readiness, a new listener).
const pollInterval = 2 * time.Millisecond

// sbinDirs are searched after PATH: Debian installs haproxy and nginx in /usr/sbin, which a non-root PATH lacks.
var sbinDirs = []string{"/usr/local/sbin", "/usr/sbin", "/sbin"}

// binaryError is a missing or unusable binary: its message says how to get one. It matches
// harness.ErrUnsupported when the binary is simply absent.
type binaryError struct {
	msg         string
	unsupported bool
}

func (e *binaryError) Error() string { return e.msg }

func (e *binaryError) Unwrap() error {
	if e.unsupported {
		return harness.ErrUnsupported
	}
	return nil
}

// findBinary returns the binary named by the "binary" option, or name looked up in PATH and the sbin dirs.
// get says how to get one (e.g. "install it with `make deps` (Debian package haproxy)"): it completes the
// error when nothing is found, which then matches harness.ErrUnsupported, as does an option naming a path
// that does not exist. On an image host (a container) the image's own binary is used: the option as given,
// or name, which the host looks up in the image's PATH when it runs it.
func findBinary(h harness.Host, name, option, get string) (string, error) {
	if _, ok := h.(harness.ImageHost); ok {
		if option != "" {
			return option, nil
		}
		return name, nil
	}
	if option != "" {
		fi, err := os.Stat(option)
		if errors.Is(err, fs.ErrNotExist) {
			return "", &binaryError{unsupported: true, msg: fmt.Sprintf("%s binary %q does not exist: %s and "+
				"point services[].options.binary at it", name, option, get)}
		}
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", &binaryError{msg: fmt.Sprintf("%s binary %q is not an executable file", name, option)}
		}
		return filepath.Abs(option)
	}
	if p, ok := lookBinary(name); ok {
		return p, nil
	}
	return "", &binaryError{unsupported: true, msg: fmt.Sprintf("%s not found in PATH: %s or point "+
		"services[].options.binary at one", name, get)}
}

// lookBinary looks name up in PATH and the sbin dirs and returns its absolute path.
func lookBinary(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs, true
		}
	}
	for _, d := range sbinDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// checkOptionKeys rejects option keys outside allowed, naming them all and listing the allowed ones.
func checkOptionKeys(kind string, opts map[string]string, allowed []string) error {
	var unknown []string
	for k := range opts {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	a := slices.Clone(allowed)
	sort.Strings(a)
	return fmt.Errorf("%s: unknown option(s) %s (allowed: %s)", kind, strings.Join(unknown, ", "),
		strings.Join(a, ", "))
}

// intOption parses opts[key] as an integer in [lo, hi], or returns def when the key is absent.
func intOption(opts map[string]string, key string, def, lo, hi int) (int, error) {
	v, ok := opts[key]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("option %s: %q is not an integer in [%d, %d]", key, v, lo, hi)
	}
	return n, nil
}

// boolOption parses opts[key] as a boolean, or returns def when the key is absent.
func boolOption(opts map[string]string, key string, def bool) (bool, error) {
	v, ok := opts[key]
	if !ok {
		return def, nil
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return false, fmt.Errorf("option %s: %q is not a boolean (true or false)", key, v)
	}
	return b, nil
}

// writeTemplate renders t with data into path.
func writeTemplate(path string, t *template.Template, data any) error {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return fmt.Errorf("render %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// prepareDir makes dir absolute and creates it.
func prepareDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("service dir %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", fmt.Errorf("create service dir: %w", err)
	}
	return abs, nil
}

// runIn runs a short command inside the host's namespace (on an image host, inside the container, with the
// image's binaries) and returns its combined output. A failure is an *harness.ExecError carrying the output.
func runIn(ctx context.Context, h harness.NetnsHost, argv ...string) (string, error) {
	if ih, ok := h.(harness.ImageHost); ok {
		return ih.Run(ctx, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := h.Do(cmd.Start); err != nil {
		return "", fmt.Errorf("run %s: %w", argv[0], err)
	}
	err := cmd.Wait()
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return out.String(), &harness.ExecError{Argv: argv, ExitCode: code, Stderr: strings.TrimSpace(out.String())}
	}
	return out.String(), nil
}

// logSize is the current size of a log file (0 when absent), so a failure can quote what came after it.
func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince returns the log written after offset, at most its last 4 KiB.
func logSince(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 4096
	if fi, err := f.Stat(); err == nil && fi.Size()-offset > max {
		offset = fi.Size() - max
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}

// exitError describes a process that exited when it should have kept running, with its log since offset.
func exitError(p *harness.Process, offset int64) error {
	code := -1
	var ee *exec.ExitError
	if errors.As(p.Err(), &ee) {
		code = ee.ExitCode()
	} else if p.Err() == nil {
		code = 0
	}
	return &harness.ExecError{Argv: p.Argv, ExitCode: code, Stderr: logSince(p.LogPath, offset)}
}

// poll calls cond every pollInterval until it reports done, returns an error, or ctx ends.
func poll(ctx context.Context, cond func() (bool, error)) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		done, err := cond()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// stopGraceFor is the grace period Stop gives a process: stopGrace, shortened by ctx's deadline.
func stopGraceFor(ctx context.Context) time.Duration {
	g := stopGrace
	if d, ok := ctx.Deadline(); ok {
		if left := time.Until(d); left < g {
			g = max(left, 0)
		}
	}
	return g
}

// waitReady runs ready while the process p runs: if p exits first, the error quotes its log since offset.
func waitReady(ctx context.Context, p *harness.Process, offset int64, ready func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	err := ready(ctx)
	if p.Exited() {
		return exitError(p, offset)
	}
	return err
}

// nofileHard is the open-files hard limit the lab's children inherit (the machines here: 20000). A child
// running as root without CAP_SYS_RESOURCE cannot raise it, so daemons must fit their descriptors under it.
func nofileHard() int {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil || r.Max > 1<<20 {
		return 1 << 20
	}
	return int(r.Max)
}

// queryTimeout bounds a version query.
const queryTimeout = 30 * time.Second

// query runs a short command that needs no network (a version query) for host h: in the container on an
// image host, in the lab's own namespace otherwise (same filesystem, no namespace switch).
func query(h harness.Host, argv ...string) (string, error) {
	if ih, ok := h.(harness.ImageHost); ok {
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		return ih.Run(ctx, argv...)
	}
	return runOutput(argv...)
}

// runOutput runs a short command in the lab's own namespace and returns its combined output; a failure is an
// *harness.ExecError.
func runOutput(argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return string(out), &harness.ExecError{Argv: argv, ExitCode: code, Stderr: strings.TrimSpace(string(out))}
	}
	return string(out), nil
}
