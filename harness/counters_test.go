package harness_test

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
)

// TestTCPCountersPerNamespace refuses connections inside one lab host and finds exactly those in its own
// Tcp.AttemptFails and Tcp.OutRsts, and none in the other host's.
func TestTCPCountersPerNamespace(t *testing.T) {
	env := buildLab(t)
	client, backend := labHost(t, env, "client"), labHost(t, env, "backend")
	read := func(h harness.NetnsHost) harness.TCPCounters {
		t.Helper()
		c, err := harness.ReadTCPCounters(h)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c0, b0 := read(client), read(backend)
	if _, ok := c0["TcpExt.TCPTimeWaitOverflow"]; !ok {
		t.Fatalf("no TcpExt.TCPTimeWaitOverflow in %d counters", len(c0))
	}
	// nothing listens on port 9 of the backend's own address: each connect is refused by the backend's kernel
	dst := netip.AddrPortFrom(backend.Addrs()[0], 9)
	const n = 5
	err := backend.Do(func() error {
		for range n {
			c, err := net.DialTimeout("tcp", dst.String(), time.Second)
			if err == nil {
				c.Close()
				return errors.New("port 9 accepted a connection")
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	bd, cd := read(backend).Since(b0), read(client).Since(c0)
	if bd["Tcp.AttemptFails"] != n || bd["Tcp.OutRsts"] != n {
		t.Errorf("backend: AttemptFails %d, OutRsts %d, want %d each (delta %v)", bd["Tcp.AttemptFails"],
			bd["Tcp.OutRsts"], n, bd)
	}
	for k := range cd {
		if strings.HasPrefix(k, "Tcp.") {
			t.Errorf("client counters moved: %v", cd)
			break
		}
	}
}

func TestParseTCPCounters(t *testing.T) {
	in := "TcpExt: SyncookiesSent TW TCPTimeWaitOverflow\nTcpExt: 1 20 3\n" +
		"IpExt: InNoRoutes\nIpExt: 7\n"
	got, err := harness.ParseTCPCounters(strings.NewReader(in), []string{"TcpExt"})
	if err != nil {
		t.Fatal(err)
	}
	want := harness.TCPCounters{"TcpExt.SyncookiesSent": 1, "TcpExt.TW": 20, "TcpExt.TCPTimeWaitOverflow": 3}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
	if _, err := harness.ParseTCPCounters(strings.NewReader("TcpExt: A B\nTcpExt: 1\n"), []string{"TcpExt"}); err == nil {
		t.Error("a short value line parsed")
	}
}
