package capture

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/testutil"
)

// TestCaptureEngines captures the same kind of traffic with both engines, on a host and on the router.
func TestCaptureEngines(t *testing.T) {
	l := newLab(t, nil)
	srv := netip.AddrPortFrom(l.server.Addrs()[0], 8080)
	startServer(t, l.server, srv)
	for _, tc := range []struct {
		name   string
		host   harness.NetnsHost
		iface  string
		engine string
		cancel bool // end the capture by cancelling its context before Stop
	}{
		{"afpacket-router", l.env.Router, "server", EngineAFPacket, false},
		{"pcapgo-client", l.client, "eth0", EnginePcapgo, false},
		{"afpacket-cancel", l.server, "eth0", EngineAFPacket, true},
		{"pcapgo-cancel", l.server, "eth0", EnginePcapgo, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.pcap")
			c, err := NewCapture(tc.host, LinkCapture{Iface: tc.iface, Snaplen: 128, Engine: tc.engine}, path)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			load := runClients(t, l.client, srv, 8081, 200, 4, func(i int) clientAction {
				return []clientAction{actServerCloses, actRefused}[i%2]
			})
			waitQuiet(c, 200e6, 5e9)
			if tc.cancel {
				cancel()
			}
			if err := c.Stop(); err != nil {
				t.Fatal(err)
			}
			if load.failed.Load() != 0 {
				t.Fatal(load.err())
			}
			st := c.Stats()
			res, err := AnalyseFile(path, Options{Roles: l.roles()})
			if err != nil {
				t.Fatal(err)
			}
			if st.Engine != tc.engine || st.Dropped != 0 || st.Written != res.Records ||
				st.Received != st.Written+st.Early {
				t.Errorf("stats %+v, %d records", st, res.Records)
			}
			if res.Conns.Established != 100 || res.Conns.Refused != 100 || res.RSTBy[RoleBackend] != 100 {
				t.Errorf("conns %+v, RST by %v", res.Conns, res.RSTBy)
			}
		})
	}
}

// rootHost is a NetnsHost whose namespace is the test process's own (the root one): probes must refuse it
// before opening anything. The namespace is held by an fd opened on a fresh thread: /proc/self/ns/net is
// the main thread's, which a goroutine that exited while locked into a lab namespace can leave behind there.
type rootHost struct {
	harness.NetnsHost
	path string
}

func newRootHost(t *testing.T) rootHost {
	var f *os.File
	err := harness.OnLockedThread(func() error {
		var err error
		f, err = os.Open("/proc/thread-self/ns/net")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return rootHost{path: fmt.Sprintf("/proc/self/fd/%d", f.Fd())}
}

func (rootHost) Name() string               { return "root" }
func (h rootHost) NetnsPath() string        { return h.path }
func (h rootHost) Do(fn func() error) error { return harness.DoIn(h.path, fn) }

func TestRefusesRootNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	h := newRootHost(t)
	c, err := NewCapture(h, LinkCapture{Iface: "lo"}, filepath.Join(t.TempDir(), "x.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "root network namespace") {
		c.Stop()
		t.Fatalf("capture in the root namespace: %v", err)
	}
	if _, err := OpenSocketStates(h, StateSampler{PortRanges: []PortRange{{Lo: 1, Hi: 2}}}); err == nil ||
		!strings.Contains(err.Error(), "root network namespace") {
		t.Fatalf("socket states in the root namespace: %v", err)
	}
}
