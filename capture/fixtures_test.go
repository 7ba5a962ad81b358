package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/faultlab/faultlab/harness"
)

var (
	updateFixtures = flag.Bool("update-fixtures", false, "regenerate testdata/*.pcap in a lab (root), and their goldens")
	update         = flag.Bool("update", false, "rewrite testdata/*.golden.json from the committed pcaps")
)

// fixtureRoles are the addresses of the lab that made the fixtures: host 0 is the client, host 1 the server.
var fixtureRoles = map[netip.Addr]Role{
	netip.MustParseAddr("198.18.0.2"): RoleClient,
	netip.MustParseAddr("198.18.1.2"): RoleBackend,
}

// fixtures are the committed captures, each made by the lab scenario that follows its name.
var fixtures = []struct {
	name string
	make func(t *testing.T, l *lab, srv netip.AddrPort)
}{
	{"basic", func(t *testing.T, l *lab, srv netip.AddrPort) {
		clients(t, l, srv, 6, func(i int) clientAction { return []clientAction{actServerCloses, actClientCloses}[i%2] })
	}},
	{"rst", func(t *testing.T, l *lab, srv netip.AddrPort) {
		clients(t, l, srv, 6, func(i int) clientAction {
			return []clientAction{actRefused, actAbort, actServerResets}[i%3]
		})
	}},
	{"zerowindow", func(t *testing.T, l *lab, srv netip.AddrPort) {
		clients(t, l, srv, 1, func(int) clientAction { return actSlowReader })
	}},
	{"synretrans", makeSYNRetrans},
}

func clients(t *testing.T, l *lab, srv netip.AddrPort, n int, act func(int) clientAction) {
	t.Helper()
	load := runClients(t, l.client, srv, 8081, n, 1, act)
	if load.failed.Load() != 0 {
		t.Fatal(load.err())
	}
}

// makeSYNRetrans connects four clients at once to a listener with a backlog of 1 that accepts nothing for
// 500 ms: the full accept queue drops SYNs (and handshake ACKs), so SYNs and SYN-ACKs are retransmitted.
func makeSYNRetrans(t *testing.T, l *lab, srv netip.AddrPort) {
	addr := netip.AddrPortFrom(srv.Addr(), 8083)
	var lfd int
	err := l.server.Do(func() error {
		var err error
		if lfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: addr.Addr().As4(), Port: int(addr.Port())}); err != nil {
			return err
		}
		return unix.Listen(lfd, 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(500 * time.Millisecond)
		for range 4 {
			fd, _, err := unix.Accept(lfd)
			if err != nil {
				return
			}
			var b [1]byte
			unix.Read(fd, b[:])
			unix.Write(fd, []byte{'x'})
			unix.Close(fd)
		}
	})
	clientsAt(t, l.client, addr, 4)
	wg.Wait()
}

func clientsAt(t *testing.T, h harness.NetnsHost, addr netip.AddrPort, n int) {
	load := runClients(t, h, addr, 0, n, n, func(int) clientAction { return actServerCloses })
	if load.failed.Load() != 0 {
		t.Fatal(load.err())
	}
}

// TestGenerateFixtures regenerates the committed captures (root and -update-fixtures):
//
//	go test ./capture -run TestGenerateFixtures -update-fixtures
func TestGenerateFixtures(t *testing.T) {
	if !*updateFixtures {
		t.Skip("run with -update-fixtures to regenerate testdata/*.pcap")
	}
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			l := newLab(t, nil)
			srv := netip.AddrPortFrom(l.server.Addrs()[0], 8080)
			startServer(t, l.server, srv)
			path := filepath.Join("testdata", f.name+".pcap")
			c, err := NewCapture(l.client, LinkCapture{Iface: "eth0", Snaplen: 96, Filter: "tcp"}, path)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			f.make(t, l, srv)
			waitQuiet(c, 300*time.Millisecond, 5*time.Second)
			if err := c.Stop(); err != nil {
				t.Fatal(err)
			}
			os.Remove(c.StatsPath())
			if st := c.Stats(); st.Dropped != 0 {
				t.Fatalf("capture dropped %d packets", st.Dropped)
			}
			writeGolden(t, f.name)
		})
	}
}

func goldenOf(t *testing.T, name string) []byte {
	t.Helper()
	res, err := AnalyseFile(filepath.Join("testdata", name+".pcap"), Options{Roles: fixtureRoles, KeepConns: true,
		Window: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func writeGolden(t *testing.T, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join("testdata", name+".golden.json"), goldenOf(t, name), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFixtures analyses the committed captures: the JSON result must equal the golden file, and each
// capture must show what its scenario exists to show.
func TestFixtures(t *testing.T) {
	checks := map[string]func(t *testing.T, r *Result){
		"basic": func(t *testing.T, r *Result) {
			if r.Conns.Established != 6 || r.Conns.ClosedFirstBy[RoleBackend] != 3 ||
				r.Conns.ClosedFirstBy[RoleClient] != 3 || r.Total(nil).RST != 0 {
				t.Errorf("conns %+v", r.Conns)
			}
		},
		"rst": func(t *testing.T, r *Result) {
			// 2 refusals and 2 server resets from the backend, 2 aborts from the client.
			if r.Conns.Refused != 2 || r.RSTBy[RoleBackend] != 4 || r.RSTBy[RoleClient] != 2 {
				t.Errorf("refused %d, RST by %v", r.Conns.Refused, r.RSTBy)
			}
		},
		"zerowindow": func(t *testing.T, r *Result) {
			c := r.ConnList[0]
			if r.Conns.ZeroWindowBy[RoleBackend] != 1 || c.Responder.ZeroWindowTime < 200*time.Millisecond ||
				r.Total(func(d Direction) bool { return d.SrcRole == RoleBackend }).ZeroWindow == 0 {
				t.Errorf("conn %+v", c)
			}
		},
		"synretrans": func(t *testing.T, r *Result) {
			total := r.Total(nil)
			if r.Conns.Established != 4 || total.SYNRetrans == 0 || r.Conns.WithSYNRetrans == 0 ||
				r.Conns.Handshake.Max < time.Second {
				t.Errorf("SYN retrans %d, conns %+v", total.SYNRetrans, r.Conns)
			}
		},
	}
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			if *update {
				writeGolden(t, f.name)
			}
			want, err := os.ReadFile(filepath.Join("testdata", f.name+".golden.json"))
			if err != nil {
				t.Fatal(err)
			}
			got := goldenOf(t, f.name)
			if !bytes.Equal(got, want) {
				t.Errorf("analysis differs from %s.golden.json (run with -update after checking):\n%s", f.name, got)
			}
			var r Result
			if err := json.Unmarshal(got, &r); err != nil {
				t.Fatal(err)
			}
			checks[f.name](t, &r)
		})
	}
}
