package harness_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/faultlab/faultlab/harness"
	"golang.org/x/sys/unix"
)

func readRoot(t *testing.T, name string) string {
	t.Helper()
	// An unlocked goroutine's thread is always in the lab process's own (root) namespace.
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

func TestApplySysctls(t *testing.T) {
	env := buildLab(t)
	h := labHost(t, env, "backend")
	want := map[string]string{
		"net.ipv4.ip_local_port_range": "1024 65000",
		"net.ipv4.tcp_tw_reuse":        "1",
		"net.core.somaxconn":           "  8192\n",
		"net/ipv4/tcp_fin_timeout":     "7",
	}
	rootBefore := map[string]string{}
	for k := range want {
		rootBefore[k] = readRoot(t, strings.ReplaceAll(k, "/", "."))
	}
	got, err := harness.ApplySysctls(h, want)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if n := strings.Join(strings.Fields(v), " "); got[k] != n {
			t.Errorf("%s: readback %q, want %q", k, got[k], n)
		}
		if r := readRoot(t, strings.ReplaceAll(k, "/", ".")); r != rootBefore[k] {
			t.Errorf("%s changed in the root namespace: %q -> %q", k, rootBefore[k], r)
		}
	}
	read, err := harness.ReadSysctls(h, []string{"net.ipv4.ip_local_port_range"})
	if err != nil || read["net.ipv4.ip_local_port_range"] != "1024 65000" {
		t.Errorf("ReadSysctls: %v %v", read, err)
	}
	// The other host keeps its defaults.
	other, err := harness.ReadSysctls(labHost(t, env, "client"), []string{"net.ipv4.ip_local_port_range"})
	if err != nil || other["net.ipv4.ip_local_port_range"] == "1024 65000" {
		t.Errorf("client port range: %v %v", other, err)
	}
}

func TestSysctlErrors(t *testing.T) {
	env := buildLab(t)
	h := labHost(t, env, "backend")
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	tests := []struct {
		name string
		kv   map[string]string
		want string
	}{
		{"tw-recycle", map[string]string{"net.ipv4.tcp_tw_recycle": "1"},
			"sysctl net.ipv4.tcp_tw_recycle: does not exist on kernel " + release + " (removed in Linux 4.12)"},
		{"unknown", map[string]string{"net.ipv4.tcp_no_such_thing": "1"},
			"sysctl net.ipv4.tcp_no_such_thing: does not exist on kernel " + release + ": "},
		{"global-net", map[string]string{"net.ipv4.tcp_max_orphans": "1"},
			"sysctl net.ipv4.tcp_max_orphans: is global to the machine, not per network namespace"},
		{"not-net", map[string]string{"kernel.pid_max": "4194304", "vm.swappiness": "1"},
			"sysctl kernel.pid_max: not a network sysctl: refusing"},
		{"malformed", map[string]string{"net..ipv4": "1"}, "sysctl net..ipv4: malformed name"},
		{"changed-by-kernel", map[string]string{"net.ipv4.tcp_fin_timeout": "30 40"},
			`sysctl net.ipv4.tcp_fin_timeout: kernel changed the value: wanted "30 40", got "30"`},
		{"invalid", map[string]string{"net.ipv4.tcp_retries2": "300"}, "sysctl net.ipv4.tcp_retries2: write \"300\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := harness.ApplySysctls(h, tt.kv)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	_, err := harness.ApplySysctls(h, map[string]string{"net.ipv4.tcp_max_orphans": "1"})
	if !errors.Is(err, harness.ErrUnsupported) {
		t.Errorf("global sysctl error %v is not ErrUnsupported", err)
	}
}

// TestSysctlRefusesRoot: a "host" whose namespace is the root namespace gets nothing written.
func TestSysctlRefusesRoot(t *testing.T) {
	buildLab(t)                                 // for RequireRoot
	cur := readRoot(t, "net.ipv4.tcp_tw_reuse") // ask for the current value: even a bug would change nothing
	_, err := harness.ApplySysctls(rootHost{}, map[string]string{"net.ipv4.tcp_tw_reuse": cur})
	if err == nil || !strings.Contains(err.Error(), "is the root network namespace: refusing") {
		t.Fatalf("error %v", err)
	}
	id, err := harness.NetnsIDOf("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if root, err := harness.IsRootNetns(id); err != nil || !root {
		t.Errorf("IsRootNetns(self) = %v, %v", root, err)
	}
}

// TestSysctlFollowsThread shows why sysctls are written on a switched thread: a /proc/sys/net file is bound
// to the network namespace of the thread that opens it, at open time.
func TestSysctlFollowsThread(t *testing.T) {
	env := buildLab(t)
	h := labHost(t, env, "backend")
	if _, err := harness.ApplySysctls(h, map[string]string{"net.ipv4.tcp_fin_timeout": "11"}); err != nil {
		t.Fatal(err)
	}
	const path = "/proc/sys/net/ipv4/tcp_fin_timeout"
	var f *os.File
	err := h.Do(func() (err error) {
		f, err = os.Open(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 32)
	n, err := f.Read(b) // read on whatever thread: the file still belongs to the lab namespace
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b[:n])); got != "11" {
		t.Errorf("file opened in the lab, read outside: %q, want 11", got)
	}
	if got := readRoot(t, "net.ipv4.tcp_fin_timeout"); got == "11" {
		t.Errorf("root namespace shows the lab's value")
	}
}
