package services

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/faultlab/faultlab/harness"
)

func TestRegistry(t *testing.T) {
	for kind, e := range Registry {
		t.Run(kind, func(t *testing.T) {
			if e.Kind != kind {
				t.Errorf("Kind %q under key %q", e.Kind, kind)
			}
			if e.Role != RoleProxy && e.Role != RoleBackend {
				t.Errorf("Role %q", e.Role)
			}
			if e.DefaultPort < 1 || e.DefaultPort > 65535 {
				t.Errorf("DefaultPort %d", e.DefaultPort)
			}
			if e.Image == "" || e.New == nil {
				t.Errorf("Image %q, New %v: want both", e.Image, e.New != nil)
			}
			if e.Role == RoleBackend && (len(e.Strategies) > 0 || e.Speaks == "") {
				t.Errorf("backend with reload strategies %v, speaking %q", e.Strategies, e.Speaks)
			}
			if e.Role == RoleProxy && e.Speaks != "" {
				t.Errorf("proxy speaking %q: its mode decides", e.Speaks)
			}
			if !slices.Contains(e.Options, "binary") {
				t.Errorf("Options %v lack binary", e.Options)
			}
			all := map[string]string{}
			for _, k := range e.Options {
				all[k] = ""
			}
			if err := e.CheckOptions(all); err != nil {
				t.Errorf("CheckOptions(every allowed key): %v", err)
			}
			all["no_such_option"] = "1"
			allowed := slices.Sorted(slices.Values(e.Options))
			want := kind + ": unknown option(s) no_such_option (allowed: " + strings.Join(allowed, ", ") + ")"
			if err := e.CheckOptions(all); err == nil || err.Error() != want {
				t.Errorf("CheckOptions: %v, want %q", err, want)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	e, err := Lookup("haproxy")
	if err != nil || e.Kind != "haproxy" || !slices.Equal(e.Strategies, Strategies) {
		t.Errorf("Lookup(haproxy): %+v, %v", e, err)
	}
	_, err = Lookup("envoy")
	want := `unknown service kind "envoy" (known: haproxy, mariadb, nginx, tengine)`
	if err == nil || err.Error() != want {
		t.Errorf("Lookup(envoy): %v, want %q", err, want)
	}
}

// testTengineConfig is a tengine proxy in front of two backends.
func testTengineConfig(opts map[string]string) Config {
	return Config{Name: "tg", Addr: netip.MustParseAddrPort("198.18.1.2:80"), Mode: "http", Options: opts,
		Servers: []netip.AddrPort{netip.MustParseAddrPort("198.18.2.2:80"), netip.MustParseAddrPort("198.18.3.2:80")}}
}

func TestRegistryTengineMissing(t *testing.T) {
	e, err := Lookup("tengine")
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.New(nil, t.TempDir(), testTengineConfig(map[string]string{"binary": "/nonexistent/tengine"}))
	want := `tengine binary "/nonexistent/tengine" does not exist: build it with ` + "`make tengine`" +
		" (from ../shared/vendor/tengine-3.1.0.tar.gz, or TENGINE_SRC=<release tarball path or URL>) and point " +
		"services[].options.binary at it"
	if err == nil || err.Error() != want || !errors.Is(err, harness.ErrUnsupported) {
		t.Fatalf("error %v, want %q wrapping ErrUnsupported", err, want)
	}
	if s != nil {
		t.Errorf("service %#v with the error, want nil", s)
	}
}

// fakeBinary writes an executable script named name into dir that prints out to stderr (a version query).
func fakeBinary(t *testing.T, dir, name, out string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho '"+out+"' >&2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRegistryNew builds every kind from a Config with a fake binary that answers the version query only:
// the configuration is written and the service is what its entry says, without a daemon run.
func TestRegistryNew(t *testing.T) {
	bin := t.TempDir()
	fakeBinary(t, bin, "mariadb-install-db", "")
	t.Setenv("PATH", bin)
	servers := []netip.AddrPort{netip.MustParseAddrPort("198.18.2.2:80")}
	tests := []struct {
		kind, version, conf string
		cfg                 Config
	}{
		{"haproxy", "HAProxy version 2.6.12-1+deb12u4 2025/01/01", "haproxy.cfg", Config{Mode: "tcp", Servers: servers}},
		{"tengine", "Tengine version: Tengine/3.1.0", "tengine.conf", Config{Mode: "http", Servers: servers}},
		{"nginx", "nginx version: nginx/1.22.1", "nginx.conf", Config{}},
		{"mariadb", "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu", "my.cnf", Config{}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			e := Registry[tt.kind]
			cfg := tt.cfg
			cfg.Name, cfg.Addr = "svc", netip.MustParseAddrPort("198.18.1.2:8080")
			cfg.Options = map[string]string{"binary": fakeBinary(t, t.TempDir(), tt.kind, tt.version)}
			dir := t.TempDir()
			s, err := e.New(nil, dir, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if s.Name() != "svc" {
				t.Errorf("Name %q, want svc", s.Name())
			}
			if v, ok := s.(Versioned); !ok || v.Version() == "" || !strings.Contains(tt.version, v.Version()) {
				t.Errorf("Versioned %v, want a version from %q", ok, tt.version)
			}
			if p, ok := s.(Processes); !ok || len(p.PIDs()) != 0 {
				t.Errorf("Processes %v, want one with no PIDs before Start", ok)
			}
			if _, ok := s.(Reloadable); ok != (len(e.Strategies) > 0) {
				t.Errorf("Reloadable %v with strategies %v", ok, e.Strategies)
			}
			b, err := os.ReadFile(filepath.Join(dir, tt.conf))
			if err != nil || !strings.Contains(string(b), "198.18.1.2") {
				t.Errorf("%s: %v, want one listening on 198.18.1.2:\n%s", tt.conf, err, b)
			}
			if e.Role == RoleBackend {
				cfg.Strategy = "reload"
				if _, err := e.New(nil, t.TempDir(), cfg); err == nil || !strings.Contains(err.Error(), "not reloadable") {
					t.Errorf("New with a strategy: %v, want not reloadable", err)
				}
			}
		})
	}
}

func TestRegistryTengineStrategy(t *testing.T) {
	cfg := testTengineConfig(map[string]string{"binary": fakeBinary(t, t.TempDir(), "tengine", "Tengine version: Tengine/3.1.0")})
	s, err := Registry["tengine"].New(nil, t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tg := s.(*Tengine); tg.Strategy() != TengineReload || tg.Procs() != 0 {
		t.Errorf("strategy %q, %d procs: want reload (the default) and none before Start", tg.Strategy(), tg.Procs())
	}
	cfg.Strategy = StrategyMasterWorker
	if _, err := Registry["tengine"].New(nil, t.TempDir(), cfg); err == nil ||
		!strings.Contains(err.Error(), `unknown reload strategy "master-worker" (allowed: reload)`) {
		t.Errorf("New with strategy master-worker: %v", err)
	}
}
