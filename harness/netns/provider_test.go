package netns_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/netns"
	"github.com/faultlab/faultlab/harness/testutil"
)

// topo3 is the lab's usual shape: a client, a proxy with two source addresses, a backend.
var topo3 = harness.Topology{Hosts: []harness.HostSpec{
	{Name: "client", NumAddrs: 1},
	{Name: "proxy", NumAddrs: 2, Sysctls: map[string]string{"net.ipv4.ip_local_port_range": "20000 20999"}},
	{Name: "backend"},
}}

func newPrefix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return harness.PrefixBase + "t" + hex.EncodeToString(b)
}

func build(t testing.TB, topo harness.Topology) *harness.Env {
	t.Helper()
	testutil.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env, err := netns.New().Build(ctx, newPrefix(t), topo, t.TempDir())
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return env
}

func netnsHost(t testing.TB, env *harness.Env, name string) harness.NetnsHost {
	t.Helper()
	h, ok := env.Host(name).(harness.NetnsHost)
	if !ok {
		t.Fatalf("host %s is %T, not a NetnsHost", name, env.Host(name))
	}
	return h
}

// ipNetnsList is the cross-check with iproute2: the names `ip netns list` shows.
func ipNetnsList(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

func withPrefix(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix+"-") {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func TestBuildTopology(t *testing.T) {
	env := build(t, topo3)
	want := []string{env.Prefix + "-backend", env.Prefix + "-client", env.Prefix + "-proxy", env.Prefix + "-router"}
	if got := withPrefix(ipNetnsList(t), env.Prefix); !slices.Equal(got, want) {
		t.Errorf("ip netns list: got %v, want %v", got, want)
	}
	wantAddrs := map[string][]string{
		"client":  {"198.18.0.2"},
		"proxy":   {"198.18.1.2", "198.18.1.3"},
		"backend": {"198.18.2.2"},
	}
	for name, want := range wantAddrs {
		var got []string
		for _, a := range env.Host(name).Addrs() {
			got = append(got, a.String())
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s addrs: got %v, want %v", name, got, want)
		}
		if env.RouterLink[name] != name {
			t.Errorf("router link of %s: %q", name, env.RouterLink[name])
		}
		// iproute2 agrees on eth0's addresses and the route, and there is no default route.
		out, err := exec.Command("ip", "-n", env.Prefix+"-"+name, "-4", "-o", "addr", "show", "dev", "eth0").Output()
		if err != nil {
			t.Fatalf("ip addr in %s: %v", name, err)
		}
		for _, a := range want {
			if !strings.Contains(string(out), " "+a+"/24 ") {
				t.Errorf("%s eth0: %s missing in %q", name, a, out)
			}
		}
		out, err = exec.Command("ip", "-n", env.Prefix+"-"+name, "-4", "route", "show").Output()
		if err != nil {
			t.Fatalf("ip route in %s: %v", name, err)
		}
		if strings.Contains(string(out), "default") || !strings.Contains(string(out), "198.18.0.0/15 via") {
			t.Errorf("%s routes: %q", name, out)
		}
	}
	got, err := harness.ReadSysctls(env.Router, []string{"net.ipv4.ip_forward"})
	if err != nil || got["net.ipv4.ip_forward"] != "1" {
		t.Errorf("router ip_forward: %v %v", got, err)
	}
	got, err = harness.ReadSysctls(netnsHost(t, env, "proxy"), []string{"net.ipv4.ip_local_port_range"})
	if err != nil || got["net.ipv4.ip_local_port_range"] != "20000 20999" {
		t.Errorf("proxy port range: %v %v", got, err)
	}
	// Each host has a socket hash of its own (Linux 6.1+; tcp_ehash_entries is negative for a namespace
	// that shares the root's), so a socket dump in one host does not walk the others' sockets.
	if _, err := os.Stat("/proc/sys/net/ipv4/tcp_ehash_entries"); err == nil {
		for _, name := range []string{"client", "proxy", "backend"} {
			got, err := harness.ReadSysctls(netnsHost(t, env, name), []string{"net.ipv4.tcp_ehash_entries"})
			if err != nil || got["net.ipv4.tcp_ehash_entries"] != netns.ChildEhashEntries {
				t.Errorf("%s: tcp_ehash_entries %v (%v), want its own %s buckets", name, got, err,
					netns.ChildEhashEntries)
			}
		}
	}
}

// TestReachability connects client -> backend and proxy (second address) -> backend through the router.
func TestReachability(t *testing.T) {
	env := build(t, topo3)
	backend := netnsHost(t, env, "backend")
	ln := listenIn(t, backend, netip.AddrPortFrom(backend.Addrs()[0], 8080))
	peers := make(chan string, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			peers <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Close()
		}
	}()
	dst := netip.AddrPortFrom(backend.Addrs()[0], 8080)
	cases := []struct {
		host string
		src  int
	}{{"client", 0}, {"proxy", 1}}
	for _, tc := range cases {
		h := netnsHost(t, env, tc.host)
		src := h.Addrs()[tc.src]
		err := h.Do(func() error {
			d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IP(src.AsSlice())}}
			c, err := d.Dial("tcp", dst.String())
			if err != nil {
				return err
			}
			return c.Close()
		})
		if err != nil {
			t.Fatalf("%s -> backend: %v", tc.host, err)
		}
		select {
		case p := <-peers:
			if p != src.String() {
				t.Errorf("%s -> backend: backend saw %s, want %s", tc.host, p, src)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("%s -> backend: not accepted", tc.host)
		}
	}
}

func listenIn(t *testing.T, h harness.NetnsHost, addr netip.AddrPort) net.Listener {
	t.Helper()
	var ln net.Listener
	err := h.Do(func() (err error) {
		ln, err = net.Listen("tcp", addr.String())
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", h.Name(), err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestStartInNetns(t *testing.T) {
	env := build(t, topo3)
	h := netnsHost(t, env, "proxy")
	p, err := h.Start(context.Background(), harness.ProcSpec{Name: "sleeper", Argv: []string{"sleep", "300"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := harness.NetnsIDOf(fmt.Sprintf("/proc/%d/ns/net", p.PID))
	if err != nil {
		t.Fatal(err)
	}
	want, err := harness.NetnsIDOf(h.NetnsPath())
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("process netns %v, host netns %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(env.Dir, "sleeper.log")); err != nil {
		t.Errorf("log in env dir: %v", err)
	}
	// The open-files soft limit was raised to the hard limit, and the child inherited it.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if soft := childNofile(t, p.PID); soft != lim.Max {
		t.Errorf("child open-files soft limit %d, want hard limit %d", soft, lim.Max)
	}
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() {
		t.Errorf("process %d still running after Close", p.PID)
	}
	if got := withPrefix(ipNetnsList(t), env.Prefix); len(got) != 0 {
		t.Errorf("namespaces left after Close: %v", got)
	}
}

func childNofile(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Max open files") {
			f := strings.Fields(strings.TrimPrefix(l, "Max open files"))
			n, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no open-files line in limits")
	return 0
}

// TestCloseKillsStrays: a daemon that escaped its process group (setsid) is still killed at Close, found
// by its namespace.
func TestCloseKillsStrays(t *testing.T) {
	env := build(t, topo3)
	h := netnsHost(t, env, "backend")
	pidFile := filepath.Join(t.TempDir(), "stray.pid")
	p, err := h.Start(context.Background(), harness.ProcSpec{Name: "daemonizer", Argv: []string{"sh", "-c",
		"setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > " + pidFile}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	stray, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if !alive(stray) {
		t.Fatalf("stray %d not running", stray)
	}
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	if alive(stray) {
		t.Errorf("stray %d survived Close", stray)
	}
}

// alive reports whether pid runs (a zombie waiting for its reaper does not count).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] != 'Z' && s[i+2] != 'X'
}

func TestValidate(t *testing.T) {
	err := netns.Validate("lab-1", harness.Topology{Hosts: []harness.HostSpec{
		{Name: "Client"}, {Name: "router"}, {Name: "a"}, {Name: "a"}, {Name: "b", NumAddrs: 300},
		{Name: "averyveryverylongname"},
	}})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`prefix "lab-1"`, `host[0] "Client"`, `host[1] "router": name is reserved`,
		`host[3] "a": duplicate`, `host[4] "b": 300 addresses`, `host[5] "averyveryverylongname"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if err := netns.Validate("fl-x", topo3); err != nil {
		t.Errorf("topo3: %v", err)
	}
}

// TestBuildFailureCleansUp: a host sysctl that does not exist fails Build, which leaves nothing behind.
func TestBuildFailureCleansUp(t *testing.T) {
	testutil.RequireRoot(t)
	prefix := newPrefix(t)
	topo := harness.Topology{Hosts: []harness.HostSpec{{Name: "a"},
		{Name: "b", Sysctls: map[string]string{"net.ipv4.tcp_tw_recycle": "1"}}}}
	env, err := netns.New().Build(context.Background(), prefix, topo, t.TempDir())
	if err == nil {
		env.Close()
		t.Fatal("build succeeded")
	}
	if !strings.Contains(err.Error(), "removed in Linux 4.12") {
		t.Errorf("error: %v", err)
	}
	if got := withPrefix(ipNetnsList(t), prefix); len(got) != 0 {
		t.Errorf("namespaces left after failed Build: %v", got)
	}
}

// TestRootUnchanged: building, using and closing a lab leaves the root namespace exactly as it was.
func TestRootUnchanged(t *testing.T) {
	testutil.RequireRoot(t)
	before, err := harness.SnapshotRoot()
	if err != nil {
		t.Fatal(err)
	}
	env := build(t, topo3)
	backend := netnsHost(t, env, "backend")
	ln := listenIn(t, backend, netip.AddrPortFrom(backend.Addrs()[0], 9000))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := harness.WaitTCP(ctx, netnsHost(t, env, "client"), netip.AddrPortFrom(backend.Addrs()[0], 9000)); err != nil {
		t.Fatal(err)
	}
	during, err := harness.SnapshotRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := harness.SnapshotRoot()
	if err != nil {
		t.Fatal(err)
	}
	if d := harness.Diff(before, during); len(d) > 0 {
		t.Errorf("root changed while the lab ran:\n%s", strings.Join(d, "\n"))
	}
	if d := harness.Diff(before, after); len(d) > 0 {
		t.Errorf("root changed after the lab closed:\n%s", strings.Join(d, "\n"))
	}
}

// BenchmarkTopology3 measures building and tearing down the three-host lab.
func BenchmarkTopology3(b *testing.B) {
	testutil.RequireRoot(b)
	dir := b.TempDir()
	var setup, teardown time.Duration
	for b.Loop() {
		t0 := time.Now()
		env, err := netns.New().Build(context.Background(), newPrefix(b), topo3, dir)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := env.Close(); err != nil {
			b.Fatal(err)
		}
		setup += t1.Sub(t0)
		teardown += time.Since(t1)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N) }
	b.ReportMetric(ms(setup), "setup-ms/op")
	b.ReportMetric(ms(teardown), "teardown-ms/op")
}

// TestIPNetnsAddDuringRun: a namespace added with `ip netns add` while a lab lives (iproute2 then binds the
// namespace directory onto itself unless it already is a mount point) must not stop the lab's teardown
// from removing its own namespaces.
func TestIPNetnsAddDuringRun(t *testing.T) {
	testutil.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := newPrefix(t)
	env, err := netns.New().Build(ctx, prefix, harness.Topology{Hosts: []harness.HostSpec{{Name: "a"}}}, t.TempDir())
	if err != nil {
		_ = env.Close()
		t.Fatalf("build: %v", err)
	}
	other := "faultlab-probe-" + strings.TrimPrefix(prefix, harness.PrefixBase)
	if out, err := exec.Command("ip", "netns", "add", other).CombinedOutput(); err != nil {
		_ = env.Close()
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	defer func() {
		if out, err := exec.Command("ip", "netns", "delete", other).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete: %v: %s", err, out)
		}
	}()
	if err := env.Close(); err != nil {
		t.Fatalf("close after `ip netns add`: %v", err)
	}
	if left := withPrefix(ipNetnsList(t), prefix); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
