package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// readyPoll is how often readiness is polled.
	readyPoll = 15 * time.Millisecond
	// dialAttempt bounds one connect attempt, so a dropped SYN does not hold the poll for the SYN timeout.
	dialAttempt = time.Second
)

// WaitTCP polls a TCP connect to addr from inside h's network namespace every 15 ms until one succeeds
// (the connection is closed at once) or ctx ends; the error then names addr, the host and the last errno.
func WaitTCP(ctx context.Context, h NetnsHost, addr netip.AddrPort) error {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	var last error
	for {
		err := dialOnce(ctx, h, addr)
		if err == nil {
			return nil
		}
		// An attempt cut short by ctx's end says less than the one before it. The socket's deadline can
		// fire just before ctx reports Done, hence the clock check.
		if last == nil || !ctxEnded(ctx) {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait tcp %s from host %s: %w (last error %s: %w)", addr, h.Name(), ctx.Err(),
				errnoName(last), last)
		case <-t.C:
		}
	}
}

func ctxEnded(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

func dialOnce(ctx context.Context, h NetnsHost, addr netip.AddrPort) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, dialAttempt)
	defer cancel()
	return h.Do(func() error {
		var d net.Dialer
		c, err := d.DialContext(actx, "tcp", addr.String())
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// errnoName gives the errno of err by its C name (ECONNREFUSED), or "none" when err carries no errno.
func errnoName(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if n := unix.ErrnoName(errno); n != "" {
			return n
		}
		return strconv.Itoa(int(errno))
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return "timeout"
	}
	return "none"
}

// WaitFile polls every 15 ms until path exists or ctx ends.
func WaitFile(ctx context.Context, path string) error {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		_, err := os.Stat(path)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait file %s: %w (last error: %w)", path, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// ListeningAmong returns those of pids (in their order) that hold a TCP socket in LISTEN state on port in
// h's network namespace: the namespace's listening sockets come from an inet_diag dump of LISTEN sockets (cheap
// however many TIME_WAIT sockets exist) on a thread inside it, and each PID's sockets from /proc/PID/fd. PIDs that have exited are skipped. It tells
// when a reloaded proxy's new process has bound its listener.
func ListeningAmong(h NetnsHost, port int, pids []int) ([]int, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("listening among: port %d out of range", port)
	}
	inodes := map[uint64]bool{}
	err := h.Do(func() error {
		return DiagTCP(1<<TCPListen, func(s *DiagSocket) {
			if int(s.Local.Port()) == port && s.Inode != 0 {
				inodes[uint64(s.Inode)] = true
			}
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listening among on host %s: %w", h.Name(), err)
	}
	var out []int
	for _, pid := range pids {
		ok, err := holdsSocket(pid, inodes)
		if err != nil {
			return out, fmt.Errorf("listening among on host %s: %w", h.Name(), err)
		}
		if ok {
			out = append(out, pid)
		}
	}
	return out, nil
}

// holdsSocket reports whether pid has an open fd on one of the socket inodes.
func holdsSocket(pid int, inodes map[uint64]bool) (bool, error) {
	if len(inodes) == 0 {
		return false, nil
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("list fds of pid %d: %w", pid, err)
	}
	for _, e := range ents {
		link, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		s, ok := strings.CutPrefix(link, "socket:[")
		if !ok {
			continue
		}
		if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil && inodes[ino] {
			return true, nil
		}
	}
	return false, nil
}
