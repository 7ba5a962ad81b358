package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/netns"
	"github.com/faultlab/faultlab/harness/testutil"
)

// testLab is a client, a proxy and a backend, each a namespace around a router.
type testLab struct {
	prefix                 string
	client, proxy, backend harness.NetnsHost
}

// newLab builds a three-host netns lab torn down by t.Cleanup.
func newLab(t *testing.T) testLab {
	t.Helper()
	testutil.RequireRoot(t)
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	prefix := harness.PrefixBase + "t" + hex.EncodeToString(b)
	topo := harness.Topology{Hosts: []harness.HostSpec{{Name: "client"}, {Name: "proxy"}, {Name: "backend"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env, err := netns.New().Build(ctx, prefix, topo, t.TempDir())
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("build lab: %v", err)
	}
	host := func(name string) harness.NetnsHost { return env.Host(name).(harness.NetnsHost) }
	return testLab{prefix: prefix, client: host("client"), proxy: host("proxy"), backend: host("backend")}
}

// at is the host's primary address with port.
func at(h harness.Host, port uint16) netip.AddrPort { return netip.AddrPortFrom(h.Addrs()[0], port) }

// dialFrom connects to addr from inside h.
func dialFrom(h harness.NetnsHost, addr netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", addr.String(), timeout)
		return err
	})
	return c, err
}

// listenIn listens on addr inside h and echoes every connection, until the test ends.
func listenIn(t *testing.T, h harness.NetnsHost, addr netip.AddrPort) {
	t.Helper()
	var l net.Listener
	if err := h.Do(func() (err error) { l, err = net.Listen("tcp", addr.String()); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go serveEcho(l)
}

// serveEcho echoes every connection l accepts until l is closed.
func serveEcho(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 512)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
	}
}
