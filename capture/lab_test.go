package capture

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/netns"
	"github.com/faultlab/faultlab/harness/testutil"
)

// lab is a two-host lab: a client and a server in namespaces around a router.
type lab struct {
	env    *harness.Env
	client harness.NetnsHost
	server harness.NetnsHost
}

func newPrefix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return harness.PrefixBase + "c" + hex.EncodeToString(b)
}

// newLab builds client and server hosts; clientSysctls are applied in the client's namespace.
func newLab(t testing.TB, clientSysctls map[string]string) *lab {
	t.Helper()
	testutil.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo := harness.Topology{Hosts: []harness.HostSpec{{Name: "client", Sysctls: clientSysctls}, {Name: "server"}}}
	env, err := netns.New().Build(ctx, newPrefix(t), topo, t.TempDir())
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("build lab: %v", err)
	}
	hosts := HostsOf(env)
	return &lab{env: env, client: hosts["client"], server: hosts["server"]}
}

// nsName is the namespace name `ip netns exec` takes.
func nsName(h harness.NetnsHost) string { return filepath.Base(h.NetnsPath()) }

func (l *lab) roles() map[netip.Addr]Role {
	return map[netip.Addr]Role{l.client.Addrs()[0]: RoleClient, l.server.Addrs()[0]: RoleBackend}
}

// Requests of the test protocol: the client's first byte says what the server does.
const (
	reqServerCloses = 'n' // server writes one byte and closes first
	reqClientCloses = 'c' // server reads to EOF, then closes
	reqHold         = 'h' // server holds the connection open until the test ends
	reqReset        = 'r' // server closes with the rest of the request unread: an RST
	reqSlow         = 'z' // server shrinks its receive buffer, waits 300 ms, then reads to EOF and closes
)

// startServer serves the test protocol on addr inside h until the test ends.
func startServer(t testing.TB, h harness.NetnsHost, addr netip.AddrPort) {
	t.Helper()
	var ln net.Listener
	err := h.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr.String())
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	var held sync.Map
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c, &held)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		held.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
	})
}

func serve(c net.Conn, held *sync.Map) {
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		c.Close()
		return
	}
	switch b[0] {
	case reqServerCloses:
		c.Write([]byte{'x'})
		c.Close()
	case reqClientCloses:
		io.Copy(io.Discard, c)
		c.Close()
	case reqReset:
		time.Sleep(20 * time.Millisecond) // let the rest of the request arrive
		c.Close()
	case reqSlow:
		c.(*net.TCPConn).SetReadBuffer(4096)
		time.Sleep(300 * time.Millisecond)
		io.Copy(io.Discard, c)
		c.Close()
	default:
		held.Store(c, true)
	}
}

// clientAction is what one client connection does.
type clientAction int

const (
	actServerCloses clientAction = iota // request, read to EOF, close
	actClientCloses                     // request, close at once (client keeps TIME_WAIT)
	actAbort                            // like actServerCloses, but close with SO_LINGER 0: RST from the client
	actRefused                          // connect to a closed port: RST from the server
	actHold                             // request a held connection and keep it (ESTABLISHED)
	actHalfClose                        // held connection, shutdown(SHUT_WR): FIN_WAIT2 / CLOSE_WAIT
	actOrphan                           // held connection, close: orphaned FIN_WAIT2 / CLOSE_WAIT
	actServerResets                     // request the server to close with unread data: RST from the server
	actSlowReader                       // send 256 KiB to a server that does not read at first: zero windows
)

// loadResult counts what the client loop did.
type loadResult struct {
	ok, refused, failed atomic.Int64
	firstErr            atomic.Value
	held                []int // fds kept open
	mu                  sync.Mutex
}

// runClients makes n connections from h to dst (refused ones to closedPort) with workers goroutines,
// connection i doing action(i). Sockets are created inside h's namespace; connect and I/O are blocking
// syscalls on ordinary goroutines. Held fds are closed when the test ends.
func runClients(t testing.TB, h harness.NetnsHost, dst netip.AddrPort, closedPort uint16, n, workers int,
	action func(i int) clientAction) *loadResult {
	t.Helper()
	f, err := harness.NewSocketFactory(h.NetnsPath())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res := &loadResult{}
	t.Cleanup(func() {
		for _, fd := range res.held {
			unix.Close(fd)
		}
	})
	var next atomic.Int64
	var g errgroup.Group
	for range workers {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return nil
				}
				act := action(i)
				to := dst
				if act == actRefused {
					to = netip.AddrPortFrom(dst.Addr(), closedPort)
				}
				err := res.one(f, to, act)
				switch {
				case act == actRefused && errors.Is(err, unix.ECONNREFUSED):
					res.refused.Add(1)
				case err == nil && act != actRefused:
					res.ok.Add(1)
				default:
					res.failed.Add(1)
					res.firstErr.CompareAndSwap(nil, fmt.Errorf("connection %d (action %d): %v", i, act, err))
				}
			}
		})
	}
	g.Wait()
	return res
}

func (r *loadResult) err() error {
	if e, ok := r.firstErr.Load().(error); ok {
		return e
	}
	return nil
}

// one makes one connection.
func (r *loadResult) one(f *harness.SocketFactory, to netip.AddrPort, act clientAction) error {
	fd, err := f.Socket(unix.AF_INET)
	if err != nil {
		return err
	}
	keep := false
	defer func() {
		if !keep {
			unix.Close(fd)
		}
	}()
	if err := unix.SetNonblock(fd, false); err != nil {
		return err
	}
	tv := unix.Timeval{Sec: 10}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := connectRetry(fd, &unix.SockaddrInet4{Addr: to.Addr().As4(), Port: int(to.Port())}); err != nil {
		return err
	}
	req := map[clientAction][]byte{actServerCloses: {reqServerCloses}, actAbort: {reqServerCloses},
		actClientCloses: {reqClientCloses}, actServerResets: []byte("rest"), actSlowReader: {reqSlow}}[act]
	if req == nil {
		req = []byte{reqHold}
	}
	if err := writeAll(fd, req); err != nil {
		return err
	}
	switch act {
	case actServerResets:
		if err := readToEOF(fd); !errors.Is(err, unix.ECONNRESET) {
			return fmt.Errorf("want a reset, got %v", err)
		}
	case actSlowReader:
		return writeAll(fd, make([]byte, 256<<10))
	case actServerCloses, actAbort:
		if err := readToEOF(fd); err != nil {
			return err
		}
		if act == actAbort {
			return unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		}
	case actHold, actHalfClose:
		if act == actHalfClose {
			if err := unix.Shutdown(fd, unix.SHUT_WR); err != nil {
				return err
			}
		}
		keep = true
		r.mu.Lock()
		r.held = append(r.held, fd)
		r.mu.Unlock()
	}
	return nil
}

// connectRetry is a blocking connect that survives signals: the Go runtime's preemption signal can
// interrupt connect (EINTR) while the handshake goes on in the kernel, so wait for it and ask again until
// the kernel says connected (EISCONN) or gives the handshake's real error.
func connectRetry(fd int, sa unix.Sockaddr) error {
	err := unix.Connect(fd, sa)
	for errors.Is(err, unix.EINTR) || errors.Is(err, unix.EALREADY) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		if _, perr := unix.Poll(pfd, 10000); perr != nil && !errors.Is(perr, unix.EINTR) {
			return perr
		}
		err = unix.Connect(fd, sa)
	}
	if errors.Is(err, unix.EISCONN) {
		return nil
	}
	return err
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func readToEOF(fd int) error {
	var b [64]byte
	for {
		n, err := unix.Read(fd, b[:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

// waitQuiet waits until the capture has written nothing new for quiet, at most max.
func waitQuiet(c *Capture, quiet, max time.Duration) {
	deadline := time.Now().Add(max)
	last := c.Stats().Written
	for time.Now().Before(deadline) {
		time.Sleep(quiet)
		now := c.Stats().Written
		if now == last {
			return
		}
		last = now
	}
}
