package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/docker/dockertest"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/harness/testutil"
	"golang.org/x/sys/unix"
)

// checkCase is one bad scenario: a shipped scenario with one textual change (base, old -> new), or a
// whole inline one, and the problem `faultlab check` must print for it.
type checkCase struct {
	name     string
	base     string // reload.yaml or exhaustion.yaml (scenarios/); "" for inline
	old, new string // the change to base (old must occur in it)
	inline   string
	args     []string // extra flags
	// machine marks a problem the preflight finds on this machine (not spec.Parse or spec.Check): it
	// needs root (the scratch namespace), and its line comes from spec.Scenario.Line.
	machine bool
	field   string
	at      string   // text on the problem's line (default: the first line of new)
	want    []string // in the message: what is wrong and what is allowed, or the sysctl and kernel, or the binary and how to get it
	setup   func(t *testing.T, c *checkCase)
}

const inlineHTTP = `name: tiny
hosts:
  - name: client
  - name: proxy
  - name: backend
services:
  - {name: web, kind: nginx, host: backend}
  - {name: lb, kind: haproxy, host: proxy, backends: [web]}
workload:
  kind: http
  from: client
  target: lb
  rate: 1000
  duration: 10s
`

func checkCases() []checkCase {
	release := harness.KernelRelease()
	return []checkCase{
		// The machine: sysctls on this kernel, capture filters, binaries, images, disk.
		{name: "bogus_sysctl", base: "reload.yaml", old: `net.core.somaxconn: "4096"`, new: `net.ipv4.tcp_bogus_knob: "1"`,
			machine: true, field: "hosts[1].sysctls[net.ipv4.tcp_bogus_knob]",
			want: []string{"sysctl net.ipv4.tcp_bogus_knob: does not exist on kernel " + release}},
		{name: "global_sysctl", base: "reload.yaml", old: `net.core.somaxconn: "4096"`, new: `net.core.netdev_max_backlog: "5000"`,
			machine: true, field: "hosts[1].sysctls[net.core.netdev_max_backlog]",
			want: []string{"net.core.netdev_max_backlog is global to the machine, not per network namespace",
				"the lab never changes the machine's own settings"}},
		{name: "sysctl_value", base: "reload.yaml", old: `net.core.somaxconn: "4096"`, new: `net.core.somaxconn: "lots"`,
			machine: true, field: "hosts[1].sysctls[net.core.somaxconn]",
			want: []string{"kernel " + release + " does not take this value", `write "lots"`, "invalid argument"}},
		{name: "bad_filter", base: "reload.yaml", old: `filter: "tcp[tcpflags] & tcp-rst != 0 or`, new: `filter: "tcp porrt 80 or`,
			machine: true, field: "probes.capture[0].filter",
			want: []string{`compile filter "tcp porrt 80 or tcp[tcpflags]`, "syntax error"}},
		{name: "missing_binary", base: "reload.yaml", old: `options: {nbthread: "1"}`,
			new: `options: {nbthread: "1", binary: /nonexistent/haproxy}`, machine: true, field: "services[1].options[binary]",
			at:   "binary: /nonexistent/haproxy",
			want: []string{`haproxy binary "/nonexistent/haproxy" does not exist`, "install it with `make deps` (Debian package haproxy)"}},
		{name: "no_docker_engine", base: "reload.yaml", old: "backend: netns", new: "backend: docker", machine: true,
			field: "backend", want: []string{"no Docker engine answers", "/nonexistent/docker.sock", "--backend netns"},
			setup: func(t *testing.T, _ *checkCase) { t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock") }},
		{name: "missing_image", base: "reload.yaml", old: "  - name: backend\n", new: "  - name: backend\n    image: faultlab/nosuch:bookworm\n",
			args: []string{"--backend", "docker"}, machine: true, field: "hosts[2].image", at: "image: faultlab/nosuch",
			want:  []string{"image faultlab/nosuch:bookworm not found: build it with `make images`"},
			setup: func(t *testing.T, _ *checkCase) { dockertest.RequireDocker(t) }},
		{name: "row_bogus_sysctl", base: "exhaustion.yaml", old: `net.ipv4.tcp_tw_reuse_delay: "100"`, new: `net.ipv4.tcp_bogus_knob: "100"`,
			machine: true, field: "matrix[3].sysctls[proxy][net.ipv4.tcp_bogus_knob]",
			want: []string{"sysctl net.ipv4.tcp_bogus_knob: does not exist on kernel " + release}},
		{name: "long_bogus_sysctl", base: "exhaustion.yaml", old: `sysctls: {proxy: {net.ipv4.ip_local_port_range: "32768 60999"}}`,
			new: `sysctls: {proxy: {net.ipv4.tcp_bogus_knob: "1"}}`, args: []string{"--long"}, machine: true,
			field: "long.sysctls[proxy][net.ipv4.tcp_bogus_knob]",
			want:  []string{"sysctl net.ipv4.tcp_bogus_knob: does not exist on kernel " + release}},
		{name: "row_port_range", base: "exhaustion.yaml", old: `"20000 60999"`, new: `"60999 20000"`, machine: true,
			field: "matrix[1].sysctls[proxy][net.ipv4.ip_local_port_range]",
			want:  []string{"kernel " + release + " does not take this value", `write "60999 20000"`, "invalid argument"}},
		{name: "row_missing_binary", base: "exhaustion.yaml", old: `services: {lb: {sources: "{addrs}"}}`,
			new: `services: {db: {binary: /nonexistent/mariadbd}}`, machine: true, field: "matrix[6].services[db][binary]",
			at:   "binary: /nonexistent/mariadbd",
			want: []string{`mariadbd binary "/nonexistent/mariadbd" does not exist`, "(Debian package mariadb-server)"}},
		{name: "filter_port", base: "exhaustion.yaml", old: `filter: "tcp port 3306 and`, new: `filter: "tcp port 99999 and`,
			machine: true, field: "probes.capture[0].filter",
			want: []string{`compile filter "tcp port 99999 and`, "illegal port number 99999 > 65535"}},
		{name: "disk_full", inline: inlineHTTP, machine: true, field: "workload", at: "workload:",
			want:  []string{"the run would record 10000 attempts", "~2.5 MB at ~250 bytes each", "kB free", "--out"},
			setup: func(t *testing.T, c *checkCase) { c.args = []string{"--out", tinyFS(t)} }},

		// The lab's registries (spec.Check).
		{name: "unknown_option", base: "reload.yaml", old: `options: {nbthread: "1"}`, new: `options: {nbthreads: "1"}`,
			field: "services[1].options[nbthreads]", at: "nbthreads",
			want: []string{`unknown option "nbthreads" for haproxy; allowed: `, "maxconn, mysql_check_user, nbthread, "}},
		{name: "unknown_analysis", base: "reload.yaml", old: "reference: legacy\n", new: "analyses: [bogus]\nreference: legacy\n",
			field: "analyses[0]", want: []string{`"bogus" is not one of capture, `}},
		{name: "unknown_workload", base: "reload.yaml", old: "  kind: http\n", new: "  kind: grpc\n",
			field: "workload.kind", want: []string{`"grpc" is not one of check, `}},
		{name: "mysql_to_http_proxy", base: "reload.yaml", old: "  kind: http\n", new: "  kind: mysql\n",
			field: "workload.target", at: "target: lb",
			want: []string{"the mysql workload needs a service that speaks mysql (mariadb, or a proxy in tcp mode in front of one)",
				`not "lb", which speaks http`}},
		{name: "http_to_mysql_proxy", base: "exhaustion.yaml", old: "  kind: mysql\n", new: "  kind: http\n",
			field: "workload.target", at: "target: lb",
			want: []string{"the http workload needs a service that speaks http", `not "lb", which speaks mysql`}},
		{name: "unknown_service_kind", base: "reload.yaml", old: "kind: nginx", new: "kind: apache",
			field: "services[0].kind", want: []string{`"apache" is not one of haproxy, mariadb, nginx, tengine`}},
		{name: "unknown_strategy", base: "reload.yaml", old: "    reload: legacy\n", new: "    reload: graceful\n",
			field: "services[1].reload", want: []string{`"graceful" is not one of legacy, `, "socket-transfer, master-worker"}},
		{name: "unknown_mitigation", base: "reload.yaml", old: "mitigations: [syn-drop]", new: "mitigations: [syn-dropp]",
			field: "matrix[5].mitigations[0]", want: []string{`"syn-dropp" is not one of syn-drop, syn-hold, tcp_migrate_req`}},
		{name: "row_unknown_option", base: "exhaustion.yaml", old: "services: {lb: {source:", new: "services: {lb: {sourc:",
			field: "matrix[5].services[lb][sourc]", want: []string{`unknown option "sourc" for haproxy; allowed: `, " source, sources, "}},
		{name: "workload_option_value", inline: strings.Replace(inlineHTTP, "kind: http", "kind: check", 1) +
			"  options: {close: never}\n", machine: true, field: "workload.options", at: "options: {close: never}",
			want: []string{`check: option close "never": want response (close once the response is in) or eof`}},
		{name: "workload_option_key", inline: inlineHTTP + "  options: {closing: eof}\n", machine: true,
			field: "workload.options", at: "options: {closing: eof}",
			want: []string{"http: unknown option(s) closing (allowed: host)"}},
		{name: "row_workload_option", inline: strings.Replace(inlineHTTP, "kind: http", "kind: check", 1) +
			"matrix:\n  - name: a\n  - name: b\n    workload_options: {close: later}\n", machine: true,
			field: "matrix[1].workload_options", at: "workload_options: {close: later}",
			want: []string{`check: option close "later"`}},
		{name: "persistent_http", inline: inlineHTTP + "  persistent: 4\n", field: "workload.persistent", at: "persistent: 4",
			want: []string{"persistent connections are implemented for the mysql workload only"}},

		// The file's structure (spec.Parse).
		{name: "tw_recycle", base: "reload.yaml", old: `net.core.somaxconn: "4096"`, new: `net.ipv4.tcp_tw_recycle: "1"`,
			field: "hosts[1].sysctls[net.ipv4.tcp_tw_recycle]",
			want:  []string{"net.ipv4.tcp_tw_recycle was removed in Linux 4.12; use net.ipv4.tcp_tw_reuse"}},
		{name: "row_tw_recycle", base: "exhaustion.yaml", old: `net.ipv4.tcp_tw_reuse_delay: "100"`, new: `net.ipv4.tcp_tw_recycle: "1"`,
			field: "matrix[3].sysctls[proxy][net.ipv4.tcp_tw_recycle]", want: []string{"removed in Linux 4.12"}},
		{name: "max_orphans", base: "reload.yaml", old: `net.core.somaxconn: "4096"`, new: `net.ipv4.tcp_max_orphans: "4096"`,
			field: "hosts[1].sysctls[net.ipv4.tcp_max_orphans]",
			want:  []string{"net.ipv4.tcp_max_orphans is global, not per network namespace", "scenarios cannot set it"}},
		{name: "not_namespaced", base: "reload.yaml", old: `net.core.somaxconn: "4096"`, new: `kernel.pid_max: "4096"`,
			field: "hosts[1].sysctls[kernel.pid_max]", want: []string{"want net.ipv4.*, net.ipv6.* or net.core.*"}},
		{name: "reserved_router", base: "reload.yaml", old: "  - name: client\n", new: "  - name: router\n",
			field: "hosts[0].name", want: []string{`"router" is reserved: it names the lab's router`}},
		{name: "reserved_lo", base: "reload.yaml", old: "  - name: backend\n", new: "  - name: lo\n",
			field: "hosts[2].name", want: []string{`"lo" is reserved`, "lo is the router's loopback device"}},
		{name: "schedule_past_end", base: "reload.yaml", old: "to_host: {delay: 10ms, loss: 0.005}",
			new:   "to_host: {delay: 10ms, loss: 0.005, schedule: [{at: 40s, loss: 0.1}]}",
			field: "matrix[6].impair.links[0].to_host.schedule[0].at",
			want:  []string{"40s is not before the workload's end (workload.duration 30s): the step would never apply"}},
		{name: "record_budget", base: "reload.yaml", old: "duration: 30s", new: "duration: 3000s",
			field: "workload", at: "workload:",
			// the count follows reload.yaml's cells and rates; what is checked is that it is refused, and how
			want: []string{"the run would record ", "attempts (rate x duration x cells x repetitions)",
				"record budget of 50000000 per run", "lower one of them"}},
		{name: "unknown_backend", base: "reload.yaml", old: "backend: netns", new: "backend: lxc",
			field: "backend", want: []string{`"lxc" is not one of netns, docker`}},
		{name: "bad_duration", base: "exhaustion.yaml", old: "duration: 10s", new: "duration: 10",
			field: "workload.duration", want: []string{`"10" has no unit; write e.g. 10s`}},
	}
}

// TestCheckRejects runs `faultlab check` on bad scenarios: each prints its problem as file:line: field:
// message, exits with status 1, and leaves no run directory and no namespace behind.
func TestCheckRejects(t *testing.T) {
	withLines := linesKnown()
	if !withLines {
		t.Log("spec.Scenario has no Line method yet: the preflight's problems are checked without their line")
	}
	before := labNamespaces(t)
	ran := false
	for _, c := range checkCases() {
		t.Run(c.name, func(t *testing.T) {
			if c.machine {
				testutil.RequireRoot(t)
				ran = true
			}
			if c.setup != nil {
				c.setup(t, &c)
			}
			file, data := c.write(t)
			out := filepath.Join(t.TempDir(), "runs")
			args := append([]string{file, "--out", out}, c.args...)
			var stdout bytes.Buffer
			err := runCheck(t, args, &stdout)
			var pe *problemsError
			if !errors.As(err, &pe) || pe.n < 1 {
				t.Fatalf("check %s: err = %v, want problems; output:\n%s", c.name, err, &stdout)
			}
			line := lineOf(t, data, c.lineText())
			prefix := fmt.Sprintf("%s:%d: %s: ", file, line, c.field)
			if c.machine && !withLines {
				prefix = fmt.Sprintf("%s: %s: ", file, c.field)
			}
			if !hasProblem(stdout.String(), prefix, c.want) {
				t.Errorf("no problem %q with %q in:\n%s", prefix, c.want, &stdout)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("check created %s (stat: %v)", out, err)
			}
		})
	}
	if ran {
		assertNoNewNamespaces(t, before)
	}
}

// TestCheckMissingFile: a scenario file that does not exist is an error naming it.
func TestCheckMissingFile(t *testing.T) {
	var stdout bytes.Buffer
	err := runCheck(t, []string{"nope.yaml"}, &stdout)
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("check nope.yaml: err = %v, want a not-found error naming nope.yaml", err)
	}
}

// TestCheckShippedScenarios: the scenarios the lab ships pass, in both modes, and say what was checked.
// The long mode's own sysctls are checked only in long mode.
func TestCheckShippedScenarios(t *testing.T) {
	testutil.RequireRoot(t)
	before := labNamespaces(t)
	for _, name := range []string{"reload.yaml", "exhaustion.yaml"} {
		for _, long := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/long=%v", strings.TrimSuffix(name, ".yaml"), long), func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "runs")
				args := []string{filepath.Join("..", "..", "scenarios", name), "--out", out}
				if long {
					args = append(args, "--long")
				}
				var stdout bytes.Buffer
				if err := runCheck(t, args, &stdout); err != nil {
					t.Fatalf("check: %v\n%s", err, &stdout)
				}
				for _, want := range []string{": ok (", "on kernel " + harness.KernelRelease(), "capture filter compiled",
					"binaries ", "/haproxy", "records "} {
					if !strings.Contains(stdout.String(), want) {
						t.Errorf("output %q lacks %q", &stdout, want)
					}
				}
				if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("check created %s", out)
				}
			})
		}
	}
	// A bogus sysctl in the long section only stops the long mode.
	c := checkCase{base: "exhaustion.yaml", old: `sysctls: {proxy: {net.ipv4.ip_local_port_range: "32768 60999"}}`,
		new: `sysctls: {proxy: {net.ipv4.tcp_bogus_knob: "1"}}`}
	file, _ := c.write(t)
	if err := runCheck(t, []string{file, "--out", filepath.Join(t.TempDir(), "runs")}, &bytes.Buffer{}); err != nil {
		t.Errorf("quick mode rejected a sysctl only the long mode sets: %v", err)
	}
	assertNoNewNamespaces(t, before)
}

func TestCheckFlags(t *testing.T) {
	f, file, err := parseCheckFlags([]string{"s.yaml", "--long", "--backend", "docker", "--cells", "a,b"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	o := f.options()
	if file != "s.yaml" || !o.Long || o.Backend != "docker" || o.OutDir != "runs" || !slices.Equal(o.Cells, []string{"a", "b"}) {
		t.Errorf("parsed %q %+v", file, o)
	}
	for _, args := range [][]string{{}, {"a.yaml", "b.yaml"}, {"a.yaml", "--seed", "3"}} {
		if _, _, err := parseCheckFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseCheckFlags(%q) accepted", args)
		}
	}
}

func runCheck(t *testing.T, args []string, w *bytes.Buffer) error {
	t.Helper()
	f, file, err := parseCheckFlags(args, w)
	if err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return check(context.Background(), f, file, w)
}

// write writes the case's scenario into a temporary directory and returns its path and text.
func (c *checkCase) write(t *testing.T) (string, string) {
	t.Helper()
	data, name := c.inline, "inline.yaml"
	if c.base != "" {
		b, err := os.ReadFile(filepath.Join("..", "..", "scenarios", c.base))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(string(b), c.old) != 1 {
			t.Fatalf("%s: %q occurs %d times, want once", c.base, c.old, strings.Count(string(b), c.old))
		}
		data, name = strings.Replace(string(b), c.old, c.new, 1), c.base
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func (c *checkCase) lineText() string {
	if c.at != "" {
		return c.at
	}
	first, _, _ := strings.Cut(strings.TrimLeft(c.new, "\n"), "\n")
	return strings.TrimSpace(first)
}

// lineOf is the 1-based line of the first occurrence of text in data.
func lineOf(t *testing.T, data, text string) int {
	t.Helper()
	i := strings.Index(data, text)
	if i < 0 {
		t.Fatalf("%q not in the scenario", text)
	}
	return 1 + strings.Count(data[:i], "\n")
}

func hasProblem(out, prefix string, want []string) bool {
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		all := true
		for _, w := range want {
			all = all && strings.Contains(l, w)
		}
		if all {
			return true
		}
	}
	return false
}

// linesKnown reports whether spec can tell the preflight the line of a field.
func linesKnown() bool {
	_, ok := any(&spec.Scenario{}).(interface{ Line(string) int })
	return ok
}

// tinyFS mounts a 64 kB tmpfs for the test: too small for any run's records.
func tinyFS(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return filepath.Join(dir, "runs")
}

// labNamespaces lists the lab's named namespaces (fl-*) in /var/run/netns.
func labNamespaces(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob("/var/run/netns/" + harness.PrefixBase + "*")
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// assertNoNewNamespaces checks that no lab namespace appeared since before, other than those of a live run
// (another test's lab, whose router namespace a live process locks), and that this process holds no
// network namespace but its own.
func assertNoNewNamespaces(t *testing.T, before []string) {
	t.Helper()
	for _, p := range labNamespaces(t) {
		if !slices.Contains(before, p) && !heldByLiveRun(p) {
			t.Errorf("namespace %s appeared during the checks", p)
		}
	}
	// A descriptor of the process's own namespace may be open for a moment (harness.OnLockedThread closes
	// the one it switches back with after answering); any other is a leak.
	home, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	fds, _ := filepath.Glob("/proc/self/fd/*")
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, "net:[") && l != home {
			t.Errorf("this process still holds a network namespace: %s -> %s", fd, l)
		}
	}
}

// heldByLiveRun reports whether another live process holds the lock of the run a namespace belongs to
// (its router namespace's flock, as netns.Clean reads it). It only reads /proc/locks: taking the lock,
// even for a moment, could fail a run that is starting.
func heldByLiveRun(path string) bool {
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		return false
	}
	routers, _ := filepath.Glob("/var/run/netns/*-router")
	for _, router := range routers {
		if !strings.HasPrefix(path, strings.TrimSuffix(router, "router")) {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(router, &st) != nil {
			continue
		}
		// e.g. "1: FLOCK  ADVISORY  READ 1234 00:04:4026532612 0 EOF"
		for _, l := range strings.Split(string(locks), "\n") {
			f := strings.Fields(l)
			if len(f) >= 6 && f[1] == "FLOCK" && strings.HasSuffix(f[5], fmt.Sprintf(":%d", st.Ino)) &&
				f[4] != fmt.Sprint(os.Getpid()) {
				return true
			}
		}
	}
	return false
}
