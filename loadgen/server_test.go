package loadgen

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/faultlab/faultlab/results"
)

// serve runs handle for every connection accepted on a fresh loopback listener and returns its address. The
// listener and the handlers end with the test.
func serve(tb testing.TB, handle func(c *net.TCPConn)) netip.AddrPort {
	tb.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	var wg sync.WaitGroup
	tb.Cleanup(func() {
		if ln != nil {
			ln.Close()
		}
		wg.Wait()
	})
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return // listener closed
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// readRequest reads up to the end of an HTTP request's headers, so that closing afterwards sends a FIN (closing
// with unread data would send an RST).
func readRequest(c net.Conn) error {
	var buf [1024]byte
	var got []byte
	for !bytes.Contains(got, []byte("\r\n\r\n")) {
		n, err := c.Read(buf[:])
		got = append(got, buf[:n]...)
		if err != nil {
			return err
		}
	}
	return nil
}

// respond returns a handler that reads the request, writes resp and closes first.
func respond(resp string) func(c *net.TCPConn) {
	return func(c *net.TCPConn) {
		if readRequest(c) == nil {
			io.WriteString(c, resp)
		}
	}
}

const okResponse = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n"

// resetAfterRequest reads the request and closes with SO_LINGER 0, which sends an RST.
func resetAfterRequest(c *net.TCPConn) {
	readRequest(c)
	c.SetLinger(0)
}

// neverRespond reads until the client gives up.
func neverRespond(c *net.TCPConn) { io.Copy(io.Discard, c) }

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	return ap
}

// fullBacklog returns the address of a listener with backlog 0 that never accepts, already holding one queued
// connection: its accept queue is full, so the kernel drops further SYNs.
func fullBacklog(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatalf("listen: %v", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))
	for i := range 8 {
		// The first connection must get in; once one dial times out the queue is full.
		d := &Dialer{Socket: LocalSocket, Timeout: 500 * time.Millisecond}
		if i == 0 {
			d.Timeout = 10 * time.Second
		}
		c, err := d.Dial(t.Context(), addr)
		if err != nil {
			if i == 0 || !isTimeout(err) {
				t.Fatalf("fill backlog: %v", err)
			}
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatal("backlog of a listen(0) socket did not fill after 8 connections")
	return addr
}

func isTimeout(err error) bool {
	o, _, _ := Classify(err)
	return o == results.OutcomeTimeout
}
