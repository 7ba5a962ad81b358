package services

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/testutil"
)

var (
	testBackend  = netip.MustParseAddrPort("127.0.0.1:8080")
	testFrontend = netip.MustParseAddrPort("127.0.0.1:8000")
)

func testHAProxyConfig(strategy string, opts map[string]string) HAProxyConfig {
	return HAProxyConfig{Name: "proxy", Bind: testFrontend, Servers: []netip.AddrPort{testBackend},
		Strategy: strategy, Options: opts}
}

func TestHAProxyConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  HAProxyConfig
		want []string // substrings of the error
	}{
		{"unknown-strategy", testHAProxyConfig("graceful", nil), []string{`unknown reload strategy "graceful"`}},
		{"unknown-option", testHAProxyConfig("", map[string]string{"maxconns": "1"}),
			[]string{"unknown option(s) maxconns (allowed: binary, check,"}},
		{"bad-values", testHAProxyConfig("", map[string]string{"maxconn": "0", "timeout_client": "5 s",
			"check": "maybe"}), []string{"option maxconn", "option timeout_client", "option check"}},
		{"maxconn-over-fd-limit", testHAProxyConfig("", map[string]string{"maxconn": "10000000"}),
			[]string{"open-files hard limit"}},
		{"mode", HAProxyConfig{Bind: testFrontend, Servers: []netip.AddrPort{testBackend}, Mode: "udp"},
			[]string{`mode "udp"`}},
		{"no-servers", HAProxyConfig{Bind: testFrontend}, []string{"no servers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewHAProxy(nil, t.TempDir(), tt.cfg)
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v, want one containing %q", err, w)
				}
			}
		})
	}
}

func TestHAProxyConfigText(t *testing.T) {
	for _, s := range Strategies {
		t.Run(s, func(t *testing.T) {
			dir := t.TempDir()
			x, err := NewHAProxy(nil, dir, testHAProxyConfig(s, map[string]string{"check": "true",
				"check_inter": "500ms", "nbthread": "2", "global": "tune.bufsize 16384\nhard-stop-after 5s"}))
			if err != nil {
				if errors.Is(err, harness.ErrUnsupported) {
					testutil.SkipMissing(t, err)
				}
				t.Fatal(err)
			}
			b, _ := os.ReadFile(x.ConfigPath())
			conf := string(b)
			for _, want := range []string{"maxconn ", "nbthread 2", "stats socket unix@admin.sock mode 600 level admin",
				"log stdout format raw local0 notice", "tune.bufsize 16384", "hard-stop-after 5s", "mode http",
				"timeout client 30s", "option dontlognull", "bind 127.0.0.1:8000", "option httpchk HEAD / HTTP/1.0",
				"server s0 127.0.0.1:8080 check inter 500ms"} {
				if !strings.Contains(conf, want) {
					t.Errorf("config lacks %q:\n%s", want, conf)
				}
			}
			if got := strings.Contains(conf, "expose-fd listeners"); got != (s == StrategySocketTransfer) {
				t.Errorf("expose-fd listeners present: %v for strategy %s", got, s)
			}
			if out, err := runOutput(x.bin, "-c", "-f", x.ConfigPath()); err != nil {
				t.Errorf("haproxy -c: %v\n%s", err, out)
			}
		})
	}
}

func TestHAProxyMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	saved := sbinDirs
	sbinDirs = nil
	defer func() { sbinDirs = saved }()
	_, err := NewHAProxy(nil, t.TempDir(), testHAProxyConfig("", nil))
	want := "haproxy not found in PATH: install it with `make deps` (Debian package haproxy) or point " +
		"services[].options.binary at one"
	if err == nil || err.Error() != want || !errors.Is(err, harness.ErrUnsupported) {
		t.Fatalf("error %v, want %q wrapping ErrUnsupported", err, want)
	}
}

// startBackend starts nginx on port 80 of the lab's backend.
func startBackend(t *testing.T, lab testLab) {
	t.Helper()
	n, err := NewNginx(lab.backend, t.TempDir(), at(lab.backend, 80), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestHAProxyReload(t *testing.T) {
	for _, strategy := range Strategies {
		t.Run(strategy, func(t *testing.T) {
			lab := newLab(t)
			startBackend(t, lab)
			x, err := NewHAProxy(lab.proxy, t.TempDir(), labHAProxyConfig(lab, strategy, map[string]string{"nbthread": "1"}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = x.Stop(context.Background()) })
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := x.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if v := x.Version(); !strings.HasPrefix(v, "2.") && !strings.HasPrefix(v, "3.") {
				t.Errorf("version %q", v)
			}
			seen := x.PIDs()
			checkGet(t, lab)
			if n := x.Procs(); n != 1 {
				t.Fatalf("Procs after start = %d, want 1", n)
			}
			for i := range 20 {
				res, err := x.Reload(ctx)
				if err != nil {
					t.Fatalf("reload %d: %v", i, err)
				}
				if len(res.NewPIDs) == 0 || res.End.Before(res.Start) {
					t.Fatalf("reload %d: %+v", i, res)
				}
				for _, pid := range res.NewPIDs {
					if slices.Contains(seen, pid) {
						t.Fatalf("reload %d: new pid %d seen before", i, pid)
					}
					if held, _ := harness.ListeningAmong(lab.proxy, 80, []int{pid}); len(held) != 1 {
						t.Errorf("reload %d: new pid %d holds no listener", i, pid)
					}
				}
				seen = append(seen, res.NewPIDs...)
				if n := x.Procs(); n < 1 {
					t.Fatalf("reload %d: Procs = %d", i, n)
				}
			}
			// Without connections the old processes finish at once: one process (or worker) remains.
			if err := poll(ctx, func() (bool, error) { return x.Procs() == 1, nil }); err != nil {
				t.Fatalf("Procs = %d, want 1: %v", x.Procs(), err)
			}
			// Only now: a SYN queued at an old process while it stops is reset (the pathology itself).
			checkGet(t, lab)
			if strategy == StrategyMasterWorker {
				if pids := x.PIDs(); len(pids) != 2 || pids[1] != seen[len(seen)-1] {
					t.Errorf("PIDs %v: want the master and the last new worker %d", pids, seen[len(seen)-1])
				}
			} else if pids := x.PIDs(); len(pids) != 1 || pids[0] != seen[len(seen)-1] {
				t.Errorf("PIDs %v: want the last new process %d", pids, seen[len(seen)-1])
			}
			if err := x.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			for _, pid := range seen {
				if !gone(pid, "haproxy") {
					t.Errorf("haproxy pid %d still running after Stop", pid)
				}
			}
			if n := x.Procs(); n != 0 {
				t.Errorf("Procs after Stop = %d", n)
			}
		})
	}
}

// labHAProxyConfig is haproxy on the lab's proxy port 80 in front of nginx on the backend.
func labHAProxyConfig(lab testLab, strategy string, opts map[string]string) HAProxyConfig {
	return HAProxyConfig{Name: "proxy", Bind: at(lab.proxy, 80), Servers: []netip.AddrPort{at(lab.backend, 80)},
		Strategy: strategy, Options: opts}
}

// checkGet sends one request from the client through haproxy.
func checkGet(t *testing.T, lab testLab) {
	t.Helper()
	code, body, err := httpGet(lab.client, at(lab.proxy, 80), "/")
	if err != nil || code != 200 || string(body) != "ok\n" {
		t.Fatalf("GET / through haproxy: %d %q %v", code, body, err)
	}
}

func TestHAProxyConfigError(t *testing.T) {
	lab := newLab(t)
	x, err := NewHAProxy(lab.proxy, t.TempDir(), labHAProxyConfig(lab, "", map[string]string{"global": "no-such-keyword 1"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = x.Stop(context.Background()) })
	err = x.Start(context.Background())
	var ee *harness.ExecError
	if !errors.As(err, &ee) || ee.ExitCode == 0 || !strings.Contains(ee.Stderr, "no-such-keyword") {
		t.Fatalf("Start: %v, want an ExecError quoting haproxy's complaint", err)
	}
	if !slices.Contains(ee.Argv, "-c") {
		t.Errorf("argv %v: want the check command", ee.Argv)
	}
	if n := x.Procs(); n != 0 {
		t.Errorf("Procs = %d after a failed start", n)
	}
}

func TestHAProxyStartFailure(t *testing.T) {
	lab := newLab(t)
	// The configuration is valid but the address is not on the host: haproxy cannot bind and exits.
	cfg := labHAProxyConfig(lab, "", nil)
	cfg.Bind = netip.MustParseAddrPort("192.0.2.1:8000")
	x, err := NewHAProxy(lab.proxy, t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = x.Stop(context.Background()) })
	err = x.Start(context.Background())
	var ee *harness.ExecError
	if !errors.As(err, &ee) || !strings.Contains(ee.Stderr, "cannot bind socket") {
		t.Fatalf("Start: %v, want an ExecError quoting the bind failure", err)
	}
}

func TestHAProxyReloadFailure(t *testing.T) {
	for _, strategy := range []string{StrategyLegacy, StrategyMasterWorker} {
		t.Run(strategy, func(t *testing.T) {
			lab := newLab(t)
			startBackend(t, lab)
			x, err := NewHAProxy(lab.proxy, t.TempDir(), labHAProxyConfig(lab, strategy, nil))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = x.Stop(context.Background()) })
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := x.Start(ctx); err != nil {
				t.Fatal(err)
			}
			good, err := os.ReadFile(x.ConfigPath())
			if err != nil {
				t.Fatal(err)
			}
			// A configuration broken behind the driver's back: the reload fails, the old process serves on.
			if err := os.WriteFile(x.ConfigPath(), append(good, "    no-such-keyword\n"...), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = x.Reload(ctx)
			if err == nil || !strings.Contains(err.Error(), "no-such-keyword") {
				t.Fatalf("reload with a broken config: %v, want haproxy's complaint", err)
			}
			checkGet(t, lab)
			if n := x.Procs(); n != 1 {
				t.Errorf("Procs after a failed reload = %d, want 1", n)
			}
			if err := os.WriteFile(x.ConfigPath(), good, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := x.Reload(ctx); err != nil {
				t.Fatalf("reload after repair: %v", err)
			}
			if err := poll(ctx, func() (bool, error) { return x.Procs() == 1, nil }); err != nil {
				t.Fatalf("Procs = %d, want 1: %v", x.Procs(), err)
			}
			checkGet(t, lab)
		})
	}
}
