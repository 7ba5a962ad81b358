package loadgen

import (
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is a connected TCP socket from Dialer.Dial. It implements net.Conn; I/O waits in the Go netpoller and
// honours deadlines. Read returns io.EOF when the peer has closed; errors carry the kernel's errno in their chain.
type Conn struct {
	f      *os.File
	local  netip.AddrPort
	remote netip.AddrPort
}

var _ net.Conn = (*Conn)(nil)

func (c *Conn) Read(p []byte) (int, error)  { return c.f.Read(p) }
func (c *Conn) Write(p []byte) (int, error) { return c.f.Write(p) }

// Close closes the socket.
func (c *Conn) Close() error { return c.f.Close() }

// LocalPort is the connection's source port.
func (c *Conn) LocalPort() int { return int(c.local.Port()) }

// LocalAddrPort and RemoteAddrPort are the connection's endpoints.
func (c *Conn) LocalAddrPort() netip.AddrPort  { return c.local }
func (c *Conn) RemoteAddrPort() netip.AddrPort { return c.remote }

func (c *Conn) LocalAddr() net.Addr  { return net.TCPAddrFromAddrPort(c.local) }
func (c *Conn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.remote) }

func (c *Conn) SetDeadline(t time.Time) error      { return c.f.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.f.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }

// SyscallConn gives access to the socket, e.g. for setsockopt.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.f.SyscallConn() }

// CloseWrite shuts down the sending side (sends FIN) and keeps reading possible.
func (c *Conn) CloseWrite() error {
	return c.control(func(fd int) error { return unix.Shutdown(fd, unix.SHUT_WR) })
}

// SetLinger sets SO_LINGER; SetLinger(0) makes Close send an RST and leave no TIME_WAIT behind.
func (c *Conn) SetLinger(sec int) error {
	l := &unix.Linger{Onoff: 1, Linger: int32(sec)}
	if sec < 0 {
		l = &unix.Linger{}
	}
	return c.control(func(fd int) error { return unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, l) })
}

func (c *Conn) control(fn func(fd int) error) error {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := rc.Control(func(fd uintptr) { opErr = fn(int(fd)) }); err != nil {
		return err
	}
	return opErr
}
