package services

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/testutil"
	"github.com/faultlab/faultlab/loadgen"
	"github.com/faultlab/faultlab/results"
)

var testMariaDBAddr = netip.MustParseAddrPort("127.0.0.1:3306")

func TestMariaDBConfig(t *testing.T) {
	tests := []struct {
		name string
		opts map[string]string
		want []string // substrings of the error; none: valid, then of the config
	}{
		{"unknown-option", map[string]string{"max_conn": "1"},
			[]string{"unknown option(s) max_conn (allowed: back_log, binary, max_connections, mysqld, thread_handling)"}},
		{"bad-values", map[string]string{"max_connections": "0", "back_log": "x", "thread_handling": "pool"},
			[]string{"option max_connections", "option back_log", `option thread_handling: "pool"`}},
		{"defaults", nil, []string{"bind-address = 127.0.0.1\n", "port = 3306\n", "skip-name-resolve\n",
			"max_connections = 10000\n", "back_log = 4096\n", "thread_handling = one-thread-per-connection\n",
			"user = root\n", "/data\n", "socket = mysqld.sock\n"}},
		{"options", map[string]string{"max_connections": "500", "thread_handling": "pool-of-threads",
			"mysqld": "wait_timeout = 5\n\nlog_warnings = 4"},
			[]string{"max_connections = 500\n", "thread_handling = pool-of-threads\n", "wait_timeout = 5\nlog_warnings = 4\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMariaDB(nil, t.TempDir(), testMariaDBAddr, tt.opts)
			if errors.Is(err, harness.ErrUnsupported) {
				testutil.SkipMissing(t, err)
			}
			if tt.name == "defaults" || tt.name == "options" {
				if err != nil {
					t.Fatal(err)
				}
				b, _ := os.ReadFile(m.ConfigPath())
				for _, w := range tt.want {
					if !strings.Contains(string(b), w) {
						t.Errorf("my.cnf lacks %q:\n%s", w, b)
					}
				}
				return
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v, want one containing %q", err, w)
				}
			}
		})
	}
}

func TestMariaDBMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	saved := sbinDirs
	sbinDirs = nil
	defer func() { sbinDirs = saved }()
	_, err := NewMariaDB(nil, t.TempDir(), testMariaDBAddr, nil)
	want := "mariadbd not found in PATH: install it with `make deps` (Debian package mariadb-server) or point " +
		"services[].options.binary at one"
	if err == nil || err.Error() != want || !errors.Is(err, harness.ErrUnsupported) {
		t.Fatalf("error %v, want %q wrapping ErrUnsupported", err, want)
	}
}

// startMariaDB starts MariaDB on port 3306 of h, stopped by t.Cleanup.
func startMariaDB(t *testing.T, h harness.NetnsHost) *MariaDB {
	t.Helper()
	m, err := NewMariaDB(h, t.TempDir(), at(h, 3306), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("mariadb %s ready in %s", m.Version(), time.Since(start).Round(time.Millisecond))
	return m
}

// mysqlAttempt runs one MySQL attempt from h to dst.
func mysqlAttempt(t *testing.T, h harness.NetnsHost, w loadgen.MySQL, dst netip.AddrPort) results.Record {
	t.Helper()
	sf, err := harness.NewSocketFactory(h.NetnsPath())
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rec results.Record
	w.Attempt(ctx, &loadgen.Dialer{Socket: sf.Socket}, dst, &rec)
	return rec
}

func TestMariaDB(t *testing.T) {
	lab := newLab(t)
	m := startMariaDB(t, lab.backend)
	if !strings.HasPrefix(m.Version(), "10.") && !strings.HasPrefix(m.Version(), "11.") {
		t.Errorf("version %q", m.Version())
	}
	v, err := MySQLGreeting(context.Background(), lab.client, m.Addr())
	if err != nil || !strings.HasPrefix(v, "5.5.5-"+m.Version()) && !strings.HasPrefix(v, m.Version()) {
		t.Errorf("greeting from the client: %q %v", v, err)
	}
	tests := []struct {
		name    string
		w       loadgen.MySQL
		outcome results.Outcome
		detail  string
	}{
		{"ok", loadgen.MySQL{}, results.OutcomeOK, ""},
		{"ok_check_user", loadgen.MySQL{User: MariaDBCheckUser}, results.OutcomeOK, ""},
		{"wrong_password", loadgen.MySQL{User: MariaDBUser, Password: "wrong"}, results.OutcomeProtoError,
			"1045 Access denied for user 'faultlab'@'198.18.0.2' (using password: YES)"},
		{"query_error", loadgen.MySQL{Query: "SELEC 1"}, results.OutcomeProtoError, "1064 You have an error"},
	}
	for _, tt := range tests {
		rec := mysqlAttempt(t, lab.client, tt.w, m.Addr())
		if rec.Outcome != tt.outcome || !strings.HasPrefix(rec.Detail, tt.detail) {
			t.Errorf("%s: %s/%s %q, want %s %q", tt.name, rec.Outcome, rec.Phase, rec.Detail, tt.outcome, tt.detail)
		}
		t.Logf("%s: %s/%s %q connect %s total %s", tt.name, rec.Outcome, rec.Phase, rec.Detail,
			time.Duration(rec.Connect), time.Duration(rec.Total))
	}
	pid := m.PID()
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !gone(pid, "mariadbd") {
		t.Errorf("mariadbd pid %d still running after Stop", pid)
	}
	if _, err := os.Stat(m.DataDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data dir after Stop: %v", err)
	}
	if rec := mysqlAttempt(t, lab.client, loadgen.MySQL{}, m.Addr()); rec.Outcome != results.OutcomeRefused {
		t.Errorf("after Stop: %s %q, want refused", rec.Outcome, rec.Detail)
	}
	if err := m.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestHAProxyMySQLConfig checks the haproxy options of the MySQL scenarios: MySQL checks, source addresses,
// logging.
func TestHAProxyMySQLConfig(t *testing.T) {
	srv := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:3306"), netip.MustParseAddrPort("127.0.0.2:3306")}
	cfg := func(mode string, opts map[string]string) HAProxyConfig {
		return HAProxyConfig{Bind: testFrontend, Mode: mode, Servers: srv, Options: opts}
	}
	tests := []struct {
		name string
		cfg  HAProxyConfig
		want []string // config lines, or error substrings when bad
		bad  bool
	}{
		{"mysql_check", cfg("tcp", map[string]string{"mysql_check_user": "faultlab_check", "log_health": "true"}),
			[]string{"option mysql-check user faultlab_check post-41\n", "option log-health-checks\n",
				"server s0 127.0.0.1:3306 check\n", "log global\n", "log stdout format rfc5424 local0 notice\n",
				"option dontlognull\n"}, false},
		{"source_range", cfg("tcp", map[string]string{"source": "198.18.1.2:10000-20000", "log_level": "info"}),
			[]string{"server s0 127.0.0.1:3306 source 198.18.1.2:10000-20000\n",
				"server s1 127.0.0.2:3306 source 198.18.1.2:10000-20000\n", "option tcplog\n",
				"log stdout format rfc5424 local0 info\n"}, false},
		{"sources", cfg("tcp", map[string]string{"sources": "198.18.1.2, 198.18.1.3", "check": "true"}),
			[]string{"server s0_0 127.0.0.1:3306 source 198.18.1.2 check\n",
				"server s0_1 127.0.0.1:3306 source 198.18.1.3 check\n", "server s1_1 127.0.0.2:3306 source 198.18.1.3 check\n",
				"log stdout format raw local0 notice\n"}, false},
		{"check_in_http", cfg("http", map[string]string{"mysql_check_user": "u"}), []string{"needs mode tcp"}, true},
		{"bad_sources", cfg("tcp", map[string]string{"sources": "198.18.1.2,host:1", "log_level": "loud"}),
			[]string{`"host:1" is not ip`, `log_level: "loud"`}, true},
		{"bad_range", cfg("tcp", map[string]string{"source": "198.18.1.2:2000-1000"}), []string{"ip:low-high"}, true},
		{"both", cfg("tcp", map[string]string{"source": "198.18.1.2", "sources": "198.18.1.3"}),
			[]string{"give one of them"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := NewHAProxy(nil, t.TempDir(), tt.cfg)
			if errors.Is(err, harness.ErrUnsupported) {
				testutil.SkipMissing(t, err)
			}
			if tt.bad {
				for _, w := range tt.want {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("error %v, want one containing %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(x.ConfigPath())
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("config lacks %q:\n%s", w, b)
				}
			}
			if out, err := runOutput(x.bin, "-c", "-f", x.ConfigPath()); err != nil {
				t.Errorf("haproxy -c: %v\n%s", err, out)
			}
		})
	}
}
