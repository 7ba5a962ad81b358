package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/faultlab/faultlab/harness/testutil"
	"github.com/faultlab/faultlab/results"
)

func TestDial(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		remote := make(chan netip.AddrPort, 1)
		dst := serve(t, func(c *net.TCPConn) { remote <- c.RemoteAddr().(*net.TCPAddr).AddrPort() })
		c, err := (&Dialer{Socket: LocalSocket, Timeout: time.Second}).Dial(t.Context(), dst)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		if got := <-remote; got.Port() != uint16(c.LocalPort()) || c.LocalPort() == 0 {
			t.Errorf("local port %d, server saw %s", c.LocalPort(), got)
		}
		if c.RemoteAddrPort() != dst {
			t.Errorf("remote %s, want %s", c.RemoteAddrPort(), dst)
		}
	})
	t.Run("sources", func(t *testing.T) {
		remote := make(chan netip.AddrPort, 4)
		dst := serve(t, func(c *net.TCPConn) { remote <- c.RemoteAddr().(*net.TCPAddr).AddrPort() })
		srcs := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
		d := &Dialer{Socket: LocalSocket, Bind: netip.MustParseAddr("127.0.0.4"), Sources: srcs}
		for i := range 4 {
			c, err := d.Dial(t.Context(), dst)
			if err != nil {
				t.Fatalf("dial %d: %v", i, err)
			}
			if got := <-remote; got.Addr() != srcs[i%2] {
				t.Errorf("connection %d came from %s, want %s", i, got, srcs[i%2])
			}
			c.Close()
		}
	})
	t.Run("bind", func(t *testing.T) {
		remote := make(chan netip.AddrPort, 1)
		dst := serve(t, func(c *net.TCPConn) { remote <- c.RemoteAddr().(*net.TCPAddr).AddrPort() })
		src := netip.MustParseAddr("127.0.0.2")
		c, err := (&Dialer{Socket: LocalSocket, Bind: src}).Dial(t.Context(), dst)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		if got := <-remote; got.Addr() != src || int(got.Port()) != c.LocalPort() {
			t.Errorf("server saw %s, want %s:%d", got, src, c.LocalPort())
		}
	})
	t.Run("ipv6", func(t *testing.T) {
		ln, err := net.Listen("tcp6", "[::1]:0")
		if err != nil {
			testutil.SkipMissing(t, fmt.Sprintf("no IPv6 loopback: %v", err))
		}
		defer ln.Close()
		dst := ln.Addr().(*net.TCPAddr).AddrPort()
		c, err := (&Dialer{Socket: LocalSocket, Bind: netip.IPv6Loopback()}).Dial(t.Context(), dst)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		if c.LocalAddrPort().Addr() != netip.IPv6Loopback() || c.LocalPort() == 0 {
			t.Errorf("local %s", c.LocalAddrPort())
		}
	})
	t.Run("refused", func(t *testing.T) {
		_, err := (&Dialer{Socket: LocalSocket}).Dial(t.Context(), closedPort(t))
		var ae *AttemptError
		if !errors.As(err, &ae) || ae.Phase != results.PhaseConnect || ae.Errno != unix.ECONNREFUSED {
			t.Fatalf("err = %#v, want connect ECONNREFUSED", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		dst := fullBacklog(t)
		begin := time.Now()
		_, err := (&Dialer{Socket: LocalSocket, Timeout: 100 * time.Millisecond}).Dial(t.Context(), dst)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("err = %v, want deadline exceeded", err)
		}
		if el := time.Since(begin); el > 2*time.Second {
			t.Errorf("dial took %s with a 100ms timeout", el)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		dst := fullBacklog(t)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := (&Dialer{Socket: LocalSocket}).Dial(ctx, dst)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("blocking_socket", func(t *testing.T) {
		blocking := func(family int) (int, error) {
			return unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		}
		dst := serve(t, func(*net.TCPConn) {})
		_, err := (&Dialer{Socket: blocking}).Dial(t.Context(), dst)
		if !errors.Is(err, ErrBlockingSocket) {
			t.Fatalf("err = %v, want ErrBlockingSocket", err)
		}
	})
	t.Run("no_socket_func", func(t *testing.T) {
		_, err := (&Dialer{}).Dial(t.Context(), netip.MustParseAddrPort("127.0.0.1:1"))
		if !errors.Is(err, ErrNoSocketFunc) {
			t.Fatalf("err = %v, want ErrNoSocketFunc", err)
		}
	})
}

// dialFileConn is the alternative Dial considered: the same non-blocking connect, then net.FileConn (which dups
// the descriptor) and a wait through the TCPConn's RawConn. Kept to compare its cost with Dial's os.File path.
func dialFileConn(dst netip.AddrPort) (net.Conn, error) {
	fd, err := (&Dialer{Socket: LocalSocket}).connect(dst)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "tcp")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err == nil {
		err = awaitConnect(rc)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// BenchmarkDial compares the two ways of waiting for a non-blocking connect in the netpoller. The client closes
// with an RST (SO_LINGER 0) so no TIME_WAIT accumulates.
func BenchmarkDial(b *testing.B) {
	dst := serve(b, func(*net.TCPConn) {})
	linger0 := func(b *testing.B, rc interface {
		SyscallConn() (syscall.RawConn, error)
	}) {
		raw, err := rc.SyscallConn()
		if err != nil {
			b.Fatal(err)
		}
		raw.Control(func(fd uintptr) {
			unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1})
		})
	}
	b.Run("file", func(b *testing.B) {
		d := &Dialer{Socket: LocalSocket, Timeout: 5 * time.Second}
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			c, err := d.Dial(ctx, dst)
			if err != nil {
				b.Fatal(err)
			}
			linger0(b, c)
			c.Close()
		}
	})
	b.Run("fileconn", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := dialFileConn(dst)
			if err != nil {
				b.Fatal(err)
			}
			linger0(b, c.(*net.TCPConn))
			c.Close()
		}
	})
	b.Run("net_dialer", func(b *testing.B) {
		var d net.Dialer
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			c, err := d.DialContext(ctx, "tcp4", dst.String())
			if err != nil {
				b.Fatal(err)
			}
			linger0(b, c.(*net.TCPConn))
			c.Close()
		}
	})
}
