package services

import (
	"cmp"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/testutil"
)

func TestNginxOptions(t *testing.T) {
	addr := netip.MustParseAddrPort("127.0.0.1:8080")
	tests := []struct {
		name string
		opts map[string]string
		want string // substring of the error; "" for none
	}{
		{"defaults", nil, ""},
		{"workers", map[string]string{"worker_processes": "2", "body_size": "70000"}, ""},
		{"workers-auto", map[string]string{"worker_processes": "auto"}, ""},
		{"unknown-key", map[string]string{"worker": "2", "zzz": "1"},
			"unknown option(s) worker, zzz (allowed: binary, body_size, files, lingering_close, lingering_time, " +
				"lingering_timeout, servers, worker_processes)"},
		{"linger", map[string]string{"lingering_close": "always", "lingering_timeout": "1500ms", "lingering_time": "10s"}, ""},
		{"linger-bad-close", map[string]string{"lingering_close": "yes"}, `option lingering_close "yes": want off, on or always`},
		{"linger-bad-timeout", map[string]string{"lingering_timeout": "5"}, "option lingering_timeout"},
		{"linger-time-fraction", map[string]string{"lingering_time": "1500ms"}, "not a whole number of seconds"},
		{"files", map[string]string{"files": "16k, 70k,1m,700"}, ""},
		{"files-bad-unit", map[string]string{"files": "16k,70kb"}, `option files "16k,70kb": size "70kb": want a number`},
		{"files-zero", map[string]string{"files": "0"}, `size "0"`},
		{"files-empty-entry", map[string]string{"files": "16k,,1m"}, `size ""`},
		{"files-too-big", map[string]string{"files": "2048m"}, `size "2048m"`},
		{"files-twice", map[string]string{"files": "16k,1m,16k"}, "16k is listed twice"},
		{"bad-body-size", map[string]string{"body_size": "-1"}, "option body_size"},
		{"no-binary", map[string]string{"binary": "/nonexistent/nginx"}, `nginx binary "/nonexistent/nginx" ` +
			"does not exist: install it with `make deps` (Debian package nginx-light) and point " +
			"services[].options.binary at it"},
		{"bad-binary", map[string]string{"binary": "/dev/null"}, `nginx binary "/dev/null" is not an executable file`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewNginx(nil, t.TempDir(), addr, tt.opts)
			if tt.want == "" && err != nil {
				if strings.Contains(err.Error(), "not found in PATH") {
					testutil.SkipMissing(t, err)
				}
				t.Fatal(err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestNginxConfig(t *testing.T) {
	dir := t.TempDir()
	n, err := NewNginx(nil, dir, netip.MustParseAddrPort("198.18.2.2:80"),
		map[string]string{"body_size": "70000", "files": "16k,1m,700", "lingering_close": "always",
			"lingering_timeout": "1500ms", "lingering_time": "10s"})
	if err != nil {
		testutil.SkipMissing(t, err)
	}
	b, err := os.ReadFile(n.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for _, want := range []string{
		"daemon off;", "master_process on;", "user root;", "worker_processes 1;", "worker_rlimit_nofile ",
		"worker_connections 8192;", "access_log off;", "keepalive_timeout 0;",
		"listen 198.18.2.2:80 backlog=4096;", `return 200 "ok\n";`, "alias " + dir + "/www/file;",
		"location /f/ {", "alias " + dir + "/www/f/;",
		"pid " + dir + "/nginx.pid;", "client_body_temp_path " + dir + "/tmp/client_body;",
		"proxy_temp_path " + dir, "fastcgi_temp_path " + dir, "uwsgi_temp_path " + dir, "scgi_temp_path " + dir,
		"lingering_close always;", "lingering_timeout 1500ms;", "lingering_time 10s;",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "www", "file")); err != nil || fi.Size() != 70000 {
		t.Errorf("body file: %v, size %d", err, fi.Size())
	}
	for name, size := range map[string]int64{"16k": 16384, "1m": 1 << 20, "700": 700} {
		if fi, err := os.Stat(filepath.Join(dir, "www", "f", name)); err != nil || fi.Size() != size {
			t.Errorf("file %s: %v, want %d bytes", name, err, size)
		}
	}
	if !strings.HasPrefix(n.Version(), "1.") {
		t.Errorf("version %q", n.Version())
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64 // 0: an error
	}{
		{"700", 700}, {"16k", 16384}, {"70K", 71680}, {"1m", 1 << 20}, {"4M", 4 << 20}, {"1024m", 1 << 30},
		{"", 0}, {"k", 0}, {"0", 0}, {"-1k", 0}, {"+1k", 0}, {"1.5m", 0}, {"1g", 0}, {"70kb", 0}, {"1025m", 0},
		{"99999999999999999999", 0},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(cmp.Or(tt.in, "empty"), ".", "_"), func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.want == 0 {
				if err == nil {
					t.Fatalf("ParseSize(%q) = %d, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNginx(t *testing.T) {
	lab := newLab(t)
	h := lab.backend
	addr := at(h, 80)
	dir := t.TempDir()
	n, err := NewNginx(h, dir, addr, map[string]string{"worker_processes": "2", "body_size": "70000",
		"files": "70k"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	code, body, err := httpGet(lab.client, addr, "/")
	if err != nil || code != 200 || string(body) != "ok\n" {
		t.Fatalf("GET /: %d %q %v", code, body, err)
	}
	code, body, err = httpGet(lab.client, addr, "/file")
	if err != nil || code != 200 || len(body) != 70000 {
		t.Fatalf("GET /file: %d, %d bytes, %v", code, len(body), err)
	}
	code, body, err = httpGet(lab.client, addr, "/f/70k")
	if err != nil || code != 200 || len(body) != 70<<10 {
		t.Fatalf("GET /f/70k: %d, %d bytes, %v", code, len(body), err)
	}
	pids := append([]int{n.PID()}, aliveChildren(n.PID())...)
	if len(pids) != 3 || !slices.Equal(n.PIDs(), pids) {
		t.Errorf("master and workers: %v, PIDs %v: want the same 3 processes", pids, n.PIDs())
	}
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := n.PIDs(); len(got) != 0 {
		t.Errorf("PIDs after Stop: %v", got)
	}
	for _, pid := range pids {
		if !gone(pid, "nginx") {
			t.Errorf("nginx pid %d still running after Stop", pid)
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
	for _, bad := range []string{"[warn]", "[alert]", "[emerg]", "[crit]"} {
		if strings.Contains(string(log), bad) {
			t.Errorf("error.log has %s:\n%s", bad, log)
		}
	}
}

func TestNginxStartFailure(t *testing.T) {
	h := newLab(t).backend
	// An address the namespace does not have: nginx cannot bind and exits.
	n, err := NewNginx(h, t.TempDir(), netip.MustParseAddrPort("192.0.2.1:8080"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	err = n.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "Cannot assign requested address") {
		t.Fatalf("Start: %v, want a bind error", err)
	}
}

func TestSpreadServers(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	ap := netip.MustParseAddrPort
	addrs := []netip.Addr{a("198.18.2.2"), a("198.18.2.3"), a("198.18.2.4")}
	got, err := spreadServers(ap("198.18.2.3:80"), addrs, 7)
	want := []netip.AddrPort{ap("198.18.2.3:80"), ap("198.18.2.2:80"), ap("198.18.2.4:80"), ap("198.18.2.3:81"),
		ap("198.18.2.2:81"), ap("198.18.2.4:81"), ap("198.18.2.3:82")}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("spreadServers = %v %v, want %v", got, err, want)
	}
	if got, err := spreadServers(ap("198.18.2.2:80"), nil, 1); err != nil || !slices.Equal(got, []netip.AddrPort{ap("198.18.2.2:80")}) {
		t.Errorf("one server: %v %v", got, err)
	}
	_, err = spreadServers(ap("198.18.2.2:65000"), addrs[:1], 1000)
	if err == nil || !strings.Contains(err.Error(), "past 65535") {
		t.Errorf("servers past the last port: %v", err)
	}
}

// TestNginxServers: one nginx process answers on every one of its servers.
func TestNginxServers(t *testing.T) {
	lab := newLab(t)
	n, err := NewNginx(lab.backend, t.TempDir(), at(lab.backend, 80), map[string]string{"servers": "300"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	servers := n.Servers()
	if len(servers) != 300 || servers[0] != at(lab.backend, 80) || servers[299] != at(lab.backend, 379) {
		t.Fatalf("servers: %d, first %v, last %v", len(servers), servers[0], servers[len(servers)-1])
	}
	for _, s := range servers {
		if code, body, err := httpGet(lab.client, s, "/"); err != nil || code != 200 || string(body) != "ok\n" {
			t.Fatalf("GET / from %v: %d %q %v", s, code, body, err)
		}
	}
}
