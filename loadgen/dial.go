// Package loadgen is faultlab's in-process load generator: an open-loop, constant-rate pacer that launches one
// connection attempt per tick and turns each into a results.Record. Its sockets come from a SocketFunc supplied
// by the harness, so they live in the client host's network namespace while connect and I/O run on ordinary
// goroutines through the Go netpoller.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/faultlab/faultlab/results"
)

// SocketFunc creates a TCP socket of the given address family (unix.AF_INET or unix.AF_INET6). The socket must
// be NON-BLOCKING and CLOEXEC; it belongs to the network namespace of the thread that created it, which is why
// the harness supplies this function. Only creation happens there: connect and I/O run on any goroutine.
type SocketFunc func(family int) (fd int, err error)

// LocalSocket is a SocketFunc that creates the socket in the calling thread's current network namespace. It is
// meant for tests and for loads that need no namespace.
func LocalSocket(family int) (int, error) {
	return unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
}

// ErrNoSocketFunc is returned when a Dialer has no SocketFunc.
var ErrNoSocketFunc = errors.New("dialer has no socket func")

// ErrBlockingSocket is returned when a SocketFunc handed out a blocking socket, which the netpoller cannot wait on.
var ErrBlockingSocket = errors.New("socket func returned a blocking socket")

// AttemptError is the error of a failed attempt: the phase it failed in, the kernel's errno when there is one,
// and the underlying error. Errors from Dial are always of this type.
type AttemptError struct {
	Phase results.Phase
	Errno syscall.Errno // 0 when the failure has no errno (deadline, protocol error)
	Err   error
	// LocalPort is the source port the kernel had assigned before the failure, 0 when unknown.
	LocalPort int
}

func (e *AttemptError) Error() string { return string(e.Phase) + ": " + e.Err.Error() }
func (e *AttemptError) Unwrap() error { return e.Err }

// attemptError wraps err for phase, picking the errno out of its chain.
func attemptError(phase results.Phase, err error) *AttemptError {
	var ae *AttemptError
	if errors.As(err, &ae) {
		return ae
	}
	e := &AttemptError{Phase: phase, Err: err}
	errors.As(err, &e.Errno)
	return e
}

// Dialer opens TCP connections with sockets from Socket.
type Dialer struct {
	Socket SocketFunc
	// Bind is an optional source address. When set, the socket gets IP_BIND_ADDRESS_NO_PORT and is bound to it,
	// so the kernel still picks the source port at connect time (per destination, not per bind).
	Bind netip.Addr
	// Sources, when not empty, replaces Bind: each connection is bound the same way to the next address in
	// turn, so a client host with several addresses has a whole port range per address (a client that
	// closes first keeps its TIME_WAIT sockets, one per port and address, for 60 s).
	Sources []netip.Addr
	// Timeout bounds connect; zero means only the context's deadline applies.
	Timeout time.Duration

	next atomic.Uint64 // the next of Sources
}

// aLongTimeAgo is a deadline in the past, used to wake a waiting poller.
var aLongTimeAgo = time.Unix(1, 0)

// Dial connects to dst: a non-blocking connect, then a wait for writability through the Go netpoller, then
// SO_ERROR. A deadline (ctx's or Timeout's) that passes yields a timeout; a cancelled ctx yields ctx.Err().
//
// The socket is kept in an os.File (os.NewFile registers a non-blocking descriptor with the netpoller): a
// successful dial costs socket, connect, getsockname, fcntl, epoll_ctl and getpeername. net.FileConn would add a
// dup, a second registration and the closing of the first, plus TCP_NODELAY and keepalive options (BenchmarkDial
// under strace: 19 client syscalls per dial and close against 8).
func (d *Dialer) Dial(ctx context.Context, dst netip.AddrPort) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, &AttemptError{Phase: results.PhaseConnect, Err: err}
	}
	deadline := d.deadline(ctx)
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return nil, &AttemptError{Phase: results.PhaseConnect, Err: fmt.Errorf("%s: %w", dst, os.ErrDeadlineExceeded)}
	}
	fd, err := d.connect(dst)
	if err != nil {
		return nil, err
	}
	local := localAddr(fd)
	f := os.NewFile(uintptr(fd), "tcp")
	if err := f.SetWriteDeadline(deadline); err != nil {
		f.Close()
		if errors.Is(err, os.ErrNoDeadline) {
			err = ErrBlockingSocket
		}
		return nil, &AttemptError{Phase: results.PhaseConnect, Err: err, LocalPort: int(local.Port())}
	}
	if err := waitConnected(ctx, f); err != nil {
		f.Close()
		ae := attemptError(results.PhaseConnect, fmt.Errorf("%s: %w", dst, err))
		ae.LocalPort = int(local.Port())
		return nil, ae
	}
	if err := f.SetWriteDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, attemptError(results.PhaseConnect, err)
	}
	return &Conn{f: f, local: local, remote: dst}, nil
}

// deadline is the earlier of ctx's deadline and now+Timeout; zero when neither is set.
func (d *Dialer) deadline(ctx context.Context) time.Time {
	deadline, ok := ctx.Deadline()
	if d.Timeout > 0 {
		if t := time.Now().Add(d.Timeout); !ok || t.Before(deadline) {
			return t
		}
	}
	return deadline
}

// connect creates the socket, binds it when asked and starts a non-blocking connect.
func (d *Dialer) connect(dst netip.AddrPort) (int, error) {
	if d.Socket == nil {
		return -1, &AttemptError{Phase: results.PhaseConnect, Err: ErrNoSocketFunc}
	}
	family, sa := sockaddr(dst)
	fd, err := d.Socket(family)
	if err != nil {
		return -1, attemptError(results.PhaseConnect, fmt.Errorf("socket: %w", err))
	}
	src := d.Bind
	if n := uint64(len(d.Sources)); n > 0 {
		src = d.Sources[(d.next.Add(1)-1)%n]
	}
	if src.IsValid() {
		if err := bindNoPort(fd, family, src); err != nil {
			unix.Close(fd)
			return -1, attemptError(results.PhaseConnect, err)
		}
	}
	switch err := unix.Connect(fd, sa); err {
	case nil, unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
		return fd, nil
	default:
		unix.Close(fd)
		return -1, attemptError(results.PhaseConnect, fmt.Errorf("%s: %w", dst, err))
	}
}

// bindNoPort binds fd to addr with IP_BIND_ADDRESS_NO_PORT, leaving the port to connect.
func bindNoPort(fd, family int, addr netip.Addr) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
		return fmt.Errorf("set IP_BIND_ADDRESS_NO_PORT: %w", os.NewSyscallError("setsockopt", err))
	}
	bfam, sa := sockaddr(netip.AddrPortFrom(addr, 0))
	if bfam != family {
		return fmt.Errorf("bind %s: address family differs from the destination's", addr)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind %s: %w", addr, os.NewSyscallError("bind", err))
	}
	return nil
}

// waitConnected waits on the netpoller until the connect started on f completes, fails, or the deadline or ctx
// ends the wait.
func waitConnected(ctx context.Context, f *os.File) (ret error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(aLongTimeAgo) })
		defer func() {
			// If the AfterFunc ran, the file's deadline is poisoned: report the cancellation (as net does).
			if !stop() && ctx.Err() != nil && (ret == nil || errors.Is(ret, os.ErrDeadlineExceeded)) {
				ret = ctx.Err()
			}
		}()
	}
	return awaitConnect(rc)
}

// awaitConnect waits for writability on rc and reads the connect's result. The callback runs once before any
// wait, so a connection completed before the fd reached the poller is seen. Writability alone is not proof (the
// poller can wake spuriously), so success is confirmed with getpeername, as the net package does.
func awaitConnect(rc syscall.RawConn) error {
	var soErr error
	err := rc.Write(func(fd uintptr) bool {
		// syscall's Getpeername, unlike unix's, does not spend a getsockopt(SO_PROTOCOL) on the result.
		if _, err := syscall.Getpeername(int(fd)); err == nil {
			return true
		}
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			soErr = os.NewSyscallError("getsockopt", err)
			return true
		}
		switch e := syscall.Errno(v); e {
		case 0, unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
			return false
		default:
			soErr = e
			return true
		}
	})
	if err != nil {
		return err
	}
	return soErr
}

// sockaddr returns the family and kernel address of ap; IPv4-mapped addresses are dialled as IPv4.
func sockaddr(ap netip.AddrPort) (int, unix.Sockaddr) {
	addr := ap.Addr().Unmap()
	if addr.Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: addr.As4()}
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: addr.As16()}
	if z := addr.Zone(); z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		}
	}
	return unix.AF_INET6, sa
}

// localAddr returns fd's local address (getsockname), the zero AddrPort when unknown.
func localAddr(fd int) netip.AddrPort {
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}
	}
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *syscall.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}
