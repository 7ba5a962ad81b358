package services

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/netns"
	"github.com/faultlab/faultlab/harness/testutil"
)

// testLab is the lab's usual shape: a client, a proxy and a backend, each a namespace around a router.
type testLab struct {
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
	topo := harness.Topology{Hosts: []harness.HostSpec{{Name: "client"}, {Name: "proxy"}, {Name: "backend"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env, err := netns.New().Build(ctx, harness.PrefixBase+"t"+hex.EncodeToString(b), topo, t.TempDir())
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("build lab: %v", err)
	}
	host := func(name string) harness.NetnsHost { return env.Host(name).(harness.NetnsHost) }
	return testLab{client: host("client"), proxy: host("proxy"), backend: host("backend")}
}

// startNginxServers starts one nginx per port on h's primary address, stopped by t.Cleanup.
func startNginxServers(ctx context.Context, t *testing.T, h harness.NetnsHost, ports ...uint16) ([]netip.AddrPort, []*Nginx) {
	t.Helper()
	var servers []netip.AddrPort
	var backends []*Nginx
	for _, port := range ports {
		n, err := NewNginx(h, t.TempDir(), at(h, port), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Stop(context.Background()) })
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		servers, backends = append(servers, at(h, port)), append(backends, n)
	}
	return servers, backends
}

// at is the host's primary address with port.
func at(h harness.Host, port uint16) netip.AddrPort { return netip.AddrPortFrom(h.Addrs()[0], port) }

// httpGet sends "GET path HTTP/1.0" to addr from inside h and returns the status and body.
func httpGet(h harness.NetnsHost, addr netip.AddrPort, path string) (int, []byte, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", addr.String(), 2*time.Second)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\n\r\n", path); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// gone reports whether pid is no longer a process running cmd (it may have been reused by another).
func gone(pid int, cmd string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err != nil || !strings.Contains(string(b), cmd)
}
