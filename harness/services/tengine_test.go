package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/testutil"
)

func tengineCfg(mode string, opts map[string]string) TengineConfig {
	return TengineConfig{Bind: netip.MustParseAddrPort("198.18.1.2:80"), Mode: mode, Options: opts,
		Servers: []netip.AddrPort{netip.MustParseAddrPort("198.18.2.2:80"), netip.MustParseAddrPort("198.18.3.2:80")}}
}

// renderTengine renders the configuration without looking for a binary.
func renderTengine(t *testing.T, cfg TengineConfig) (string, error) {
	t.Helper()
	d, err := tengineConfigData(cfg, "/srv/tg")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := tengineTemplate.Execute(&b, d); err != nil {
		t.Fatal(err)
	}
	return b.String(), nil
}

func TestTengineConfig(t *testing.T) {
	tests := []struct {
		name   string
		cfg    TengineConfig
		want   []string
		absent []string
	}{
		{"http-defaults", tengineCfg("", nil), []string{
			"daemon off;", "user root;", "worker_processes 1;", "pid /srv/tg/nginx.pid;",
			"proxy_temp_path /srv/tg/tmp/proxy;", "keepalive_timeout 0;",
			"upstream backend {\n        server 198.18.2.2:80;\n        server 198.18.3.2:80;\n",
			"check interval=3000 rise=2 fall=5 timeout=1000 type=http default_down=false;",
			"check_keepalive_requests 1;",
			`check_http_send "HEAD / HTTP/1.0\r\n\r\n";`,
			"check_http_expect_alive http_2xx http_3xx;",
			"listen 198.18.1.2:80 backlog=4096;", "proxy_pass http://backend;", "check_status;", "check_shm_size 2m;",
		}, []string{"stream {"}},
		{"http-keepalive-checks", tengineCfg("http", map[string]string{"check_interval": "500ms",
			"check_timeout": "2s", "check_rise": "1", "check_fall": "3", "check_keepalive_requests": "100",
			"check_http_send": `HEAD / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n`, "worker_processes": "2",
			"check_default_down": "true"}),
			[]string{"check interval=500 rise=1 fall=3 timeout=2000 type=http default_down=true;", "check_keepalive_requests 100;",
				`check_http_send "HEAD / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n";`, "worker_processes 2;"},
			nil},
		{"http-no-check", tengineCfg("http", map[string]string{"check": "false"}),
			[]string{"proxy_pass http://backend;"}, []string{"check ", "check_status"}},
		{"http-reuseport", tengineCfg("http", map[string]string{"reuseport": "true", "worker_processes": "2"}),
			[]string{"listen 198.18.1.2:80 backlog=4096 reuseport;", "worker_processes 2;"}, nil},
		{"tcp-reuseport", tengineCfg("tcp", map[string]string{"reuseport": "true"}),
			[]string{"stream {", "listen 198.18.1.2:80 backlog=4096 reuseport;"}, nil},
		{"reuseport-off", tengineCfg("http", map[string]string{"reuseport": "false"}),
			[]string{"listen 198.18.1.2:80 backlog=4096;"}, []string{"reuseport"}},
		{"tcp", tengineCfg("tcp", nil),
			[]string{"stream {", "server 198.18.2.2:80;", "listen 198.18.1.2:80 backlog=4096;", "proxy_pass backend;"},
			[]string{"http {", "check", "worker_shutdown_timeout"}},
		{"tcp-shutdown-timeout", tengineCfg("tcp", map[string]string{"worker_shutdown_timeout": "1500ms"}),
			[]string{"\nworker_shutdown_timeout 1500ms;\n", "stream {"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := renderTengine(t, tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(conf, w) {
					t.Errorf("config lacks %q:\n%s", w, conf)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(conf, a) {
					t.Errorf("config has %q:\n%s", a, conf)
				}
			}
			if strings.Count(conf, "{") != strings.Count(conf, "}") {
				t.Errorf("unbalanced braces:\n%s", conf)
			}
		})
	}
}

func TestTengineConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  TengineConfig
		want []string
	}{
		{"unknown-option", tengineCfg("", map[string]string{"check_intervall": "3s"}),
			[]string{"unknown option(s) check_intervall (allowed: binary, check,"}},
		{"tcp-check", tengineCfg("tcp", map[string]string{"check": "true"}), []string{"http upstreams only"}},
		{"bad-values", tengineCfg("", map[string]string{"check_interval": "3", "check_fall": "0",
			"check_http_send": `HEAD "/"`, "reuseport": "yes please", "reload_worker_processes": "0",
			"worker_shutdown_timeout": "1"}),
			[]string{"option check_interval", "option check_fall", "option check_http_send", "option worker_shutdown_timeout",
				`option reuseport: "yes please" is not a boolean (true or false)`, "option reload_worker_processes"}},
		{"no-servers", TengineConfig{Bind: netip.MustParseAddrPort("198.18.1.2:80")}, []string{"no servers"}},
		{"strategy", TengineConfig{Bind: netip.MustParseAddrPort("198.18.1.2:80"), Strategy: "legacy",
			Servers: []netip.AddrPort{netip.MustParseAddrPort("198.18.2.2:80")}},
			[]string{`unknown reload strategy "legacy" (allowed: reload)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderTengine(t, tt.cfg)
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v, want one containing %q", err, w)
				}
			}
		})
	}
}

func TestTengineMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	saved := sbinDirs
	sbinDirs = nil
	defer func() { sbinDirs = saved }()
	dir := t.TempDir()
	_, err := NewTengine(nil, dir, tengineCfg("", nil))
	want := "tengine not found in PATH: build it with `make tengine` (from ../shared/vendor/tengine-3.1.0.tar.gz, " +
		"or TENGINE_SRC=<release tarball path or URL>) or point services[].options.binary at one"
	if err == nil || err.Error() != want || !errors.Is(err, harness.ErrUnsupported) {
		t.Fatalf("error %v, want %q wrapping ErrUnsupported", err, want)
	}
	// The configuration is written anyway, for a user to take to a machine with Tengine.
	if _, err := os.Stat(filepath.Join(dir, "tengine.conf")); err != nil {
		t.Error(err)
	}
	// A binary option naming a file that is not executable is a mistake, not a missing binary.
	notExec := filepath.Join(t.TempDir(), "tengine")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = NewTengine(nil, t.TempDir(), tengineCfg("", map[string]string{"binary": notExec}))
	if err == nil || errors.Is(err, harness.ErrUnsupported) || !strings.Contains(err.Error(), notExec+`" is not an executable`) {
		t.Fatalf("error %v, want one naming the bad binary", err)
	}
}

// TestReloadMaster runs the reload Tengine uses on nginx, whose master reloads the same way (tengine itself is
// not installed here): a SIGHUP gives new workers holding the listener while the old ones quit, and a
// configuration the master cannot load is an error quoting its [emerg] line.
func TestReloadMaster(t *testing.T) {
	lab := newLab(t)
	addr := at(lab.backend, 80)
	n, err := NewNginx(lab.backend, t.TempDir(), addr, map[string]string{"worker_processes": "2"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	errorLog := filepath.Join(n.dir, "error.log")
	for i := range 3 {
		old := aliveChildren(n.PID())
		res, err := reloadMaster(ctx, n.h, n.proc, int(addr.Port()), errorLog)
		if err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if len(res.NewPIDs) == 0 || slices.ContainsFunc(res.NewPIDs, func(p int) bool { return slices.Contains(old, p) }) ||
			res.End.Before(res.Start) {
			t.Fatalf("reload %d: %+v, old workers %v", i, res, old)
		}
		if code, _, err := httpGet(lab.client, addr, "/"); err != nil || code != 200 {
			t.Fatalf("GET after reload %d: %d %v", i, code, err)
		}
		// The old workers have no connection left: they quit soon.
		err = poll(ctx, func() (bool, error) {
			return !slices.ContainsFunc(aliveChildren(n.PID()), func(p int) bool { return slices.Contains(old, p) }), nil
		})
		if err != nil {
			t.Fatalf("old workers %v after reload %d: %v", old, i, err)
		}
	}
	if err := os.WriteFile(n.ConfigPath(), []byte("no_such_directive on;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := aliveChildren(n.PID())
	if _, err := reloadMaster(ctx, n.h, n.proc, int(addr.Port()), errorLog); err == nil ||
		!strings.Contains(err.Error(), "[emerg]") || !strings.Contains(err.Error(), "no_such_directive") {
		t.Fatalf("reload of a bad config: %v, want the master's [emerg]", err)
	}
	if after := aliveChildren(n.PID()); !slices.Equal(after, before) {
		t.Errorf("workers %v after a failed reload, want the old ones %v", after, before)
	}
}

// TestTengine runs the real Tengine (`make tengine` builds it from the vendored release) as an http proxy in
// front of two nginx backends: it proxies, its upstream check module marks both servers up and, once one
// backend stops, that one down; a reload (SIGHUP, as `tengine -s reload`) gives new workers that go on
// proxying; Stop leaves no process. Then the same binary as a tcp (stream) proxy.
func TestTengine(t *testing.T) {
	lab := newLab(t)
	if _, err := FindBinaries("tengine", nil); err != nil {
		t.Fatal(err)
	}
	if bins, _ := FindBinaries("tengine", nil); bins[0].Err != nil {
		testutil.SkipMissing(t, bins[0].Err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	servers, backends := startNginxServers(ctx, t, lab.backend, 80, 81)
	proxy := at(lab.proxy, 80)
	dir := t.TempDir()
	tg, err := NewTengine(lab.proxy, dir, TengineConfig{Bind: proxy, Servers: servers, Options: map[string]string{
		"worker_processes": "2", "check_interval": "200ms", "check_timeout": "500ms", "check_rise": "1",
		"check_fall": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	if tg.Version() != "3.1.0" {
		t.Errorf("version %q, want 3.1.0 (the vendored release)", tg.Version())
	}
	t.Cleanup(func() { _ = tg.Stop(context.Background()) })
	if err := tg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body, err := httpGet(lab.client, proxy, "/"); err != nil || code != 200 || string(body) != "ok\n" {
		t.Fatalf("GET / through tengine: %d %q %v", code, body, err)
	}
	waitStatus := func(want map[string]string) {
		t.Helper()
		var last map[string]string
		err := poll(ctx, func() (bool, error) {
			var err error
			last, err = tengineCheckStatus(lab.client, proxy)
			return err == nil && maps.Equal(last, want), nil
		})
		if err != nil {
			t.Fatalf("check_status %v, want %v: %v", last, want, err)
		}
	}
	waitStatus(map[string]string{servers[0].String(): "up", servers[1].String(): "up"})
	if err := backends[1].Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitStatus(map[string]string{servers[0].String(): "up", servers[1].String(): "down"})

	old := tg.PIDs()
	res, err := tg.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.NewPIDs) == 0 || slices.ContainsFunc(res.NewPIDs, func(p int) bool { return slices.Contains(old, p) }) {
		t.Errorf("reload: new workers %v, processes before %v", res.NewPIDs, old)
	}
	for range 5 { // only the live backend gets requests now
		if code, _, err := httpGet(lab.client, proxy, "/"); err != nil || code != 200 {
			t.Fatalf("GET / after the reload: %d %v", code, err)
		}
	}
	pids := tg.PIDs()
	if err := tg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if !gone(pid, "nginx") {
			t.Errorf("tengine pid %d still running after Stop", pid)
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
	for _, bad := range []string{"[alert]", "[emerg]", "[crit]"} {
		if strings.Contains(string(log), bad) {
			t.Errorf("error.log has %s:\n%s", bad, log)
		}
	}

	tcp, err := NewTengine(lab.proxy, t.TempDir(), TengineConfig{Name: "tengine-tcp", Bind: at(lab.proxy, 3306),
		Mode: "tcp", Servers: servers[:1]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tcp.Stop(context.Background()) })
	if err := tcp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body, err := httpGet(lab.client, at(lab.proxy, 3306), "/"); err != nil || code != 200 ||
		string(body) != "ok\n" {
		t.Fatalf("GET / through tengine's stream proxy: %d %q %v", code, body, err)
	}

	// A configuration the binary refuses fails Start with the binary's own words, and starts nothing.
	bad, err := NewTengine(lab.proxy, t.TempDir(), TengineConfig{Name: "tengine-bad", Bind: at(lab.proxy, 8080),
		Servers: servers[:1]})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad.ConfigPath(), []byte("events {}\nno_such_directive on;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bad.Stop(context.Background()) })
	if err := bad.Start(ctx); err == nil || !strings.Contains(err.Error(), "configuration test failed") ||
		!strings.Contains(err.Error(), "no_such_directive") || len(bad.PIDs()) != 0 {
		t.Fatalf("Start with a bad configuration: %v (processes %v)", err, bad.PIDs())
	}
}

// tengineCheckStatus reads the upstream check module's status page (JSON) through the proxy: server -> status.
func tengineCheckStatus(client harness.NetnsHost, proxy netip.AddrPort) (map[string]string, error) {
	code, body, err := httpGet(client, proxy, "/status?format=json")
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("status page: HTTP %d", code)
	}
	var st struct {
		Servers struct {
			Server []struct {
				Name   string `json:"name"`
				Status string `json:"status"`
			} `json:"server"`
		} `json:"servers"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("status page: %w: %s", err, body)
	}
	m := map[string]string{}
	for _, s := range st.Servers.Server {
		m[s.Name] = s.Status
	}
	return m, nil
}

// TestTengineAlternateConfigs: with reload_worker_processes the driver keeps two configurations that differ in
// the worker count only; without it, none.
func TestTengineAlternateConfigs(t *testing.T) {
	d, err := tengineConfigData(tengineCfg("http", map[string]string{"worker_processes": "2", "reuseport": "true",
		"reload_worker_processes": "1"}), "/srv/tg")
	if err != nil {
		t.Fatal(err)
	}
	confs, err := alternateConfigs(d)
	if err != nil || len(confs) != 2 {
		t.Fatalf("alternateConfigs: %d configurations, %v", len(confs), err)
	}
	first, second := string(confs[0]), string(confs[1])
	if !strings.Contains(first, "worker_processes 2;") || !strings.Contains(second, "worker_processes 1;") {
		t.Errorf("worker counts: first\n%s\nsecond\n%s", first, second)
	}
	if strings.Replace(second, "worker_processes 1;", "worker_processes 2;", 1) != first {
		t.Errorf("the configurations differ in more than the worker count")
	}
	d, _ = tengineConfigData(tengineCfg("http", nil), "/srv/tg")
	if confs, err := alternateConfigs(d); confs != nil || err != nil {
		t.Errorf("without the option: %d configurations, %v", len(confs), err)
	}
}
