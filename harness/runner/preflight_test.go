package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/harness/testutil"
)

func loadChecked(t *testing.T, name string) *spec.Scenario {
	t.Helper()
	s, err := spec.Load(filepath.Join("..", "..", "scenarios", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Check(s, Vocabulary()); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPreflightSysctlFields checks which field a cell's sysctl is blamed on: the last that set it, in
// Expand's order (the host's, long mode's, the row's, the tcp_migrate_req mitigation).
func TestPreflightSysctlFields(t *testing.T) {
	tests := []struct {
		file, cell string
		long       bool
		host, name string
		want       string
	}{
		{"reload.yaml", "legacy", false, "proxy", "net.core.somaxconn", "hosts[1].sysctls[net.core.somaxconn]"},
		{"reload.yaml", "tcp_migrate_req", false, "proxy", spec.MigrateReqSysctl, "matrix[4].mitigations[0]"},
		{"exhaustion.yaml", "default", false, "proxy", "net.ipv4.ip_local_port_range", "hosts[1].sysctls[net.ipv4.ip_local_port_range]"},
		{"exhaustion.yaml", "default", true, "proxy", "net.ipv4.ip_local_port_range", "long.sysctls[proxy][net.ipv4.ip_local_port_range]"},
		{"exhaustion.yaml", "wide-range", true, "proxy", "net.ipv4.ip_local_port_range", "matrix[1].sysctls[proxy][net.ipv4.ip_local_port_range]"},
		{"exhaustion.yaml", "tw-reuse", false, "client", "net.ipv4.tcp_tw_reuse", "hosts[0].sysctls[net.ipv4.tcp_tw_reuse]"},
		{"exhaustion.yaml", "tw-reuse", false, "proxy", "net.ipv4.tcp_tw_reuse", "matrix[2].sysctls[proxy][net.ipv4.tcp_tw_reuse]"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".yaml")+"/"+tt.cell+"/"+tt.host, func(t *testing.T) {
			s := loadChecked(t, tt.file)
			p := &preflight{s: s, opts: Options{Long: tt.long}, rows: map[string]int{}}
			for i, row := range s.Matrix {
				p.rows[row.Name] = i
			}
			for _, c := range spec.Expand(s, tt.long) {
				if c.Name != tt.cell {
					continue
				}
				for hi, h := range c.Scenario.Hosts {
					if h.Name != tt.host {
						continue
					}
					if _, ok := h.Sysctls[tt.name]; !ok {
						t.Fatalf("cell %s does not set %s on %s", tt.cell, tt.name, tt.host)
					}
					if got := p.sysctlField(&c, hi, tt.name); got != tt.want {
						t.Errorf("field %q, want %q", got, tt.want)
					}
					return
				}
			}
			t.Fatalf("no cell %s with host %s", tt.cell, tt.host)
		})
	}
}

// TestPreflightQuickAndClean runs the preflight of both shipped scenarios in long mode (the most cells and
// sysctl sets): it passes, takes well under a second, and leaves no namespace, descriptor or thread behind.
func TestPreflightQuickAndClean(t *testing.T) {
	testutil.RequireRoot(t)
	home, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"reload.yaml", "exhaustion.yaml"} {
		s := loadChecked(t, name)
		out := filepath.Join(t.TempDir(), "runs")
		start := time.Now()
		rep, err := Preflight(context.Background(), s, Options{Long: true, OutDir: out})
		took := time.Since(start)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: %d cells in %s: %s", name, rep.Cells, took, strings.Join(rep.Checked, "; "))
		if took > time.Second {
			t.Errorf("%s: preflight took %s, want well under a second", name, took)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: preflight created %s", name, out)
		}
	}
	assertOnlyHomeNetns(t, home)
}

// assertOnlyHomeNetns checks that no thread of this process is in, and no descriptor holds, a network
// namespace other than the process's own: the scratch namespaces are gone.
func assertOnlyHomeNetns(t *testing.T, home string) {
	t.Helper()
	links, _ := filepath.Glob("/proc/self/task/*/ns/net")
	fds, _ := filepath.Glob("/proc/self/fd/*")
	for _, p := range append(links, fds...) {
		if l, err := os.Readlink(p); err == nil && strings.HasPrefix(l, "net:[") && l != home {
			t.Errorf("%s -> %s, a namespace other than the process's own (%s)", p, l, home)
		}
	}
}

// TestPreflightScenarioInCode: a scenario built in code has no file or lines; its problems still name the
// field, the sysctl and the kernel.
func TestPreflightScenarioInCode(t *testing.T) {
	testutil.RequireRoot(t)
	s := &spec.Scenario{Name: "code",
		Hosts: []spec.Host{{Name: "client"}, {Name: "server", Sysctls: map[string]string{
			"net.ipv4.tcp_bogus_knob": "1", "net.ipv4.tcp_fin_timeout": "7"}}},
		Services: []spec.Service{{Name: "web", Kind: "nginx", Host: "server"}},
		Workload: spec.Workload{Kind: "http", From: "client", Target: "web", Rate: 10, Duration: time.Second}}
	if err := spec.Validate(s); err != nil {
		t.Fatal(err)
	}
	if err := spec.Check(s, Vocabulary()); err != nil {
		t.Fatal(err)
	}
	_, err := Preflight(context.Background(), s, Options{OutDir: t.TempDir()})
	var se *spec.Error
	if !errors.As(err, &se) || len(se.Problems) != 1 {
		t.Fatalf("Preflight = %v, want one problem", err)
	}
	p := se.Problems[0]
	want := "sysctl net.ipv4.tcp_bogus_knob: does not exist on kernel " + harness.KernelRelease()
	if p.File != "" || p.Line != 0 || p.Field != "hosts[1].sysctls[net.ipv4.tcp_bogus_knob]" || !strings.HasPrefix(p.Msg, want) {
		t.Errorf("problem %+v, want field hosts[1].sysctls[net.ipv4.tcp_bogus_knob] and %q", p, want)
	}
}

// TestPreflightUnknownBackend: a backend given on the command line is checked against the providers table.
func TestPreflightUnknownBackend(t *testing.T) {
	s := loadChecked(t, "reload.yaml")
	s.Hosts[1].Sysctls = nil // no scratch namespace: this test needs no root
	_, err := Preflight(context.Background(), s, Options{Backend: "lxc", OutDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), `backend: "lxc" is not one of docker, netns`) {
		t.Errorf("Preflight = %v, want the backends listed", err)
	}
}

// TestPreflightReplacedBinary: a matrix row that replaces a service is preflighted as its cell runs it: the
// replacement's program is looked for, and a bad one is blamed on the replacement's field.
func TestPreflightReplacedBinary(t *testing.T) {
	s := loadChecked(t, "reload.yaml")
	s.Hosts[1].Sysctls = nil // no scratch namespace: this test needs no root
	s.Matrix = []spec.CellSpec{{Name: "haproxy"}, {Name: "tengine", Replace: map[string]spec.ServiceReplace{
		"lb": {Kind: "tengine", Options: map[string]string{"binary": "/nonexistent/tengine"}}}}}
	s.Expect, s.Reference = nil, ""
	if err := spec.Check(s, Vocabulary()); err != nil {
		t.Fatal(err)
	}
	_, err := Preflight(context.Background(), s, Options{OutDir: t.TempDir()})
	var se *spec.Error
	if !errors.As(err, &se) {
		t.Fatalf("Preflight = %v, want a problem with the replacement's binary", err)
	}
	var fields []string
	for _, p := range se.Problems {
		fields = append(fields, p.Field)
	}
	if want := "matrix[1].replace[lb].options[binary]"; !slices.Contains(fields, want) {
		t.Errorf("problems %v, want one at %s", se.Problems, want)
	}
}
