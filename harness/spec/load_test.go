package spec

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// base is a valid scenario whose lines the error cases below edit in place, so their line numbers hold.
const base = `name: t
hosts:
  - name: client
  - name: proxy
  - name: backend
services:
  - name: web
    kind: nginx
    host: backend
    port: 80
  - name: lb
    kind: haproxy
    host: proxy
    mode: http
    backends: [web]
workload:
  kind: http
  from: client
  target: lb
  rate: 100
  duration: 1s
  timeout: 2s
reload:
  service: lb
  interval: 250ms
  jitter: 0s
`

// edit replaces whole lines of base (pairs of old, new) and appends tail.
func edit(t *testing.T, tail string, pairs ...string) string {
	t.Helper()
	doc := base
	for i := 0; i+1 < len(pairs); i += 2 {
		old := pairs[i] + "\n"
		if strings.Count(doc, old) != 1 {
			t.Fatalf("edit: %q is not exactly one line of base", pairs[i])
		}
		doc = strings.Replace(doc, old, pairs[i+1]+"\n", 1)
	}
	return doc + tail
}

func TestParseBase(t *testing.T) {
	if _, err := Parse("t.yaml", []byte(base)); err != nil {
		t.Fatalf("base scenario: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	const allowedTop = "name, description, backend, seed, repetitions, rounds, hosts, services, workload, reload, matrix, axes, exclude, kernels, reference, long, expect, analyses, probes, impair"
	tests := []struct {
		name  string
		tail  string
		edits []string
		want  []string
	}{
		// Decoding.
		{name: "unknown_field", edits: []string{"  - name: proxy", "  - {name: proxy, sysctl: {}}"},
			want: []string{`t.yaml:4: hosts[1]: unknown field "sysctl"; allowed: name, addrs, sysctls, image`}},
		{name: "unknown_top_field", tail: "colour: blue\n",
			want: []string{`t.yaml:27: unknown field "colour"; allowed: ` + allowedTop}},
		{name: "rate_not_a_number", edits: []string{"  rate: 100", "  rate: fast"},
			want: []string{`t.yaml:20: workload.rate: want a number, got "fast"`}},
		{name: "rate_not_finite", edits: []string{"  rate: 100", "  rate: .inf"},
			want: []string{`t.yaml:20: workload.rate: want a number, got ".inf"`}},
		{name: "duration_without_unit", edits: []string{"  duration: 1s", "  duration: 20"},
			want: []string{`t.yaml:21: workload.duration: "20" has no unit; write e.g. 20s`}},
		{name: "duration_quoted_without_unit", edits: []string{"  interval: 250ms", `  interval: "250"`},
			want: []string{`t.yaml:25: reload.interval: "250" has no unit; write e.g. 250s`}},
		{name: "duration_garbage", edits: []string{"  timeout: 2s", "  timeout: soon"},
			want: []string{`t.yaml:22: workload.timeout: want a duration such as 20s or 250ms, got "soon"`}},
		{name: "duration_list", edits: []string{"  duration: 1s", "  duration: [1s]"},
			want: []string{`t.yaml:21: workload.duration: want a duration such as 20s or 250ms, got a list`}},
		{name: "integer_wanted", edits: []string{"    port: 80", "    port: 80.5"},
			want: []string{`t.yaml:10: services[0].port: want an integer, got "80.5"`}},
		{name: "integer_overflow", edits: []string{"    port: 80", "    port: 99999999999999999999"},
			want: []string{`t.yaml:10: services[0].port: want an integer, got "99999999999999999999"`}},
		{name: "string_wanted", edits: []string{"    host: backend", "    host: {name: backend}"},
			want: []string{`t.yaml:9: services[0].host: want a string, got a mapping`}},
		{name: "list_wanted", edits: []string{"    backends: [web]", "    backends: web"},
			want: []string{`t.yaml:15: services[1].backends: want a list, got "web"`}},
		{name: "mapping_wanted", tail: "long: 5\n",
			want: []string{`t.yaml:27: long: want a mapping, got "5"`}},
		{name: "mapping_key_not_scalar", edits: []string{"  - name: proxy", "  - {name: proxy, sysctls: {[a]: 1}}"},
			want: []string{`t.yaml:4: hosts[1].sysctls: want a name as key, got a list`}},
		{name: "duplicate_field", edits: []string{"    port: 80", "    host: backend"},
			want: []string{`t.yaml:10: services[0].host: duplicate field (first at line 9)`}},
		{name: "duplicate_key", edits: []string{"  - name: proxy", "  - {name: proxy, sysctls: {net.core.somaxconn: 1, net.core.somaxconn: 2}}"},
			want: []string{`t.yaml:4: hosts[1].sysctls[net.core.somaxconn]: duplicate key (first at line 4)`}},
		{name: "yaml_syntax", edits: []string{"  - name: proxy", "  - name: [proxy"},
			want: []string{`t.yaml:4: invalid YAML: did not find expected ',' or ']'`}},
		{name: "yaml_bad_utf8", edits: []string{"  - name: proxy", "  - name: pro\xffxy"},
			want: []string{`t.yaml:4: invalid YAML: invalid leading UTF-8 octet`}},
		{name: "empty_file", edits: []string{}, tail: "",
			want: []string{`t.yaml:1: scenario file is empty`}},
		{name: "yaml_unknown_alias", edits: []string{"    backends: [web]", "    backends: *backends"},
			want: []string{`t.yaml:15: invalid YAML: unknown anchor 'backends' referenced`}},
		{name: "yaml_control_character", edits: []string{"  rate: 100", "  rate: 1\x0100"},
			want: []string{`t.yaml:20: invalid YAML: control characters are not allowed`}},
		{name: "several_documents", tail: "---\nname: u\n",
			want: []string{`t.yaml:27: several YAML documents; a scenario file holds exactly one`}},
		{name: "merge_not_mapping", tail: "long: {<<: 5}\n",
			want: []string{`t.yaml:27: long: merge key (<<) wants a mapping or a list of mappings, got "5"`}},

		// Scenario.
		{name: "name_missing", edits: []string{"name: t", "description: x"},
			want: []string{`t.yaml:1: name: missing; name the scenario (e.g. reload)`}},
		{name: "name_bad", edits: []string{"name: t", "name: My Test"},
			want: []string{`t.yaml:1: name: "My Test" must match [a-z0-9][a-z0-9_.+-]*`}},
		{name: "backend_bad", tail: "backend: kubernetes\n",
			want: []string{`t.yaml:27: backend: "kubernetes" is not one of netns, docker`}},
		{name: "repetitions_zero", tail: "repetitions: 0\n",
			want: []string{`t.yaml:27: repetitions: 0 out of range 1..1000`}},
		{name: "repetitions_too_many", tail: "repetitions: 1001\n",
			want: []string{`t.yaml:27: repetitions: 1001 out of range 1..1000`}},
		{name: "workload_missing", edits: []string{"workload:", "workload_:"},
			want: []string{
				`t.yaml:1: workload: missing; describe the load (kind, from, target, rate, duration)`,
				`t.yaml:16: unknown field "workload_"; allowed: ` + allowedTop,
			}},

		// Hosts.
		{name: "host_name_bad", edits: []string{"  - name: client", "  - name: client1234567", "  from: client", "  from: client1234567"},
			want: []string{`t.yaml:3: hosts[0].name: "client1234567" must match [a-z][a-z0-9]{0,9}`}},
		{name: "host_duplicate", edits: []string{"  - name: backend", "  - name: proxy", "    host: backend", "    host: proxy", "    port: 80", "    port: 8080"},
			want: []string{`t.yaml:5: hosts[2].name: duplicate host "proxy" (also hosts[1])`}},
		{name: "addrs_range", edits: []string{"  - name: client", "  - {name: client, addrs: 17}"},
			want: []string{`t.yaml:3: hosts[0].addrs: 17 out of range 1..16`}},
		{name: "addrs_zero", edits: []string{"  - name: client", "  - {name: client, addrs: 0}"},
			want: []string{`t.yaml:3: hosts[0].addrs: 0 out of range 1..16`}},

		// Sysctls.
		{name: "sysctl_removed", edits: []string{"  - name: proxy", "  - {name: proxy, sysctls: {net.ipv4.tcp_tw_recycle: 1}}"},
			want: []string{`t.yaml:4: hosts[1].sysctls[net.ipv4.tcp_tw_recycle]: net.ipv4.tcp_tw_recycle was removed in Linux 4.12; use net.ipv4.tcp_tw_reuse (see docs)`}},
		{name: "sysctl_global", edits: []string{"  - name: proxy", "  - {name: proxy, sysctls: {net.ipv4.tcp_max_orphans: 65536}}"},
			want: []string{`t.yaml:4: hosts[1].sysctls[net.ipv4.tcp_max_orphans]: net.ipv4.tcp_max_orphans is global, not per network namespace: setting it would change the machine running the lab, so scenarios cannot set it`}},
		{name: "sysctl_not_net", edits: []string{"  - name: proxy", "  - {name: proxy, sysctls: {kernel.pid_max: 1}}"},
			want: []string{`t.yaml:4: hosts[1].sysctls[kernel.pid_max]: "kernel.pid_max" is not a namespaced sysctl name; want net.ipv4.*, net.ipv6.* or net.core.* in lowercase dotted form, e.g. net.ipv4.tcp_tw_reuse`}},
		{name: "sysctl_uppercase", edits: []string{"  - name: proxy", "  - {name: proxy, sysctls: {net.ipv4.TCP_tw_reuse: 1}}"},
			want: []string{`t.yaml:4: hosts[1].sysctls[net.ipv4.TCP_tw_reuse]: "net.ipv4.TCP_tw_reuse" is not a namespaced sysctl name; want net.ipv4.*, net.ipv6.* or net.core.* in lowercase dotted form, e.g. net.ipv4.tcp_tw_reuse`}},
		{name: "sysctl_empty_value", edits: []string{"  - name: proxy", `  - {name: proxy, sysctls: {net.core.somaxconn: ""}}`},
			want: []string{`t.yaml:4: hosts[1].sysctls[net.core.somaxconn]: value is empty`}},
		{name: "sysctl_list_value", edits: []string{"  - name: proxy", `  - {name: proxy, sysctls: {net.core.somaxconn: [1]}}`},
			want: []string{`t.yaml:4: hosts[1].sysctls[net.core.somaxconn]: want a string, got a list`}},

		// Services.
		{name: "service_host", edits: []string{"    host: backend", "    host: db"},
			want: []string{`t.yaml:9: services[0].host: no host "db" (hosts: client, proxy, backend)`}},
		{name: "service_port", edits: []string{"    port: 80", "    port: 70000"},
			want: []string{`t.yaml:10: services[0].port: 70000 out of range 1..65535`}},
		{name: "service_backend_unknown", edits: []string{"    backends: [web]", "    backends: [web, db]"},
			want: []string{`t.yaml:15: services[1].backends[1]: no service "db" (services: lb, web)`}},
		{name: "service_backend_self", edits: []string{"    backends: [web]", "    backends: [lb]"},
			want: []string{`t.yaml:15: services[1].backends[0]: a proxy cannot be its own backend`}},

		// Workload.
		{name: "workload_from", edits: []string{"  from: client", "  from: laptop"},
			want: []string{`t.yaml:18: workload.from: no host "laptop" (hosts: client, proxy, backend)`}},
		{name: "workload_target", edits: []string{"  target: lb", "  target: api"},
			want: []string{`t.yaml:19: workload.target: no service "api" (services: lb, web)`}},
		{name: "rate_zero", edits: []string{"  rate: 100", "  rate: 0"},
			want: []string{`t.yaml:20: workload.rate: 0 out of range: want > 0 and <= 100000 connections/s`}},
		{name: "rate_too_high", edits: []string{"  rate: 100", "  rate: 100001"},
			want: []string{`t.yaml:20: workload.rate: 100001 out of range: want > 0 and <= 100000 connections/s`}},
		{name: "duration_zero", edits: []string{"  duration: 1s", "  duration: 0s"},
			want: []string{`t.yaml:21: workload.duration: 0s must be > 0`}},
		{name: "timeout_negative", edits: []string{"  timeout: 2s", "  timeout: -1s"},
			want: []string{`t.yaml:22: workload.timeout: -1s must be > 0`}},

		// Reload.
		{name: "reload_interval", edits: []string{"  interval: 250ms", "  interval: -1s"},
			want: []string{`t.yaml:25: reload.interval: -1s must be > 0`}},
		{name: "reload_jitter", edits: []string{"  jitter: 0s", "  jitter: 250ms"},
			want: []string{`t.yaml:26: reload.jitter: 250ms must be >= 0 and < interval (250ms)`}},
		{name: "reload_syn_drop", edits: []string{"  jitter: 0s", "  syn_drop: {before: -1ms}"},
			want: []string{`t.yaml:26: reload.syn_drop.before: -1ms must be >= 0`}},

		// Matrix.
		{name: "matrix", tail: `matrix:
  - name: Legacy
  - name: dup
  - name: dup
  - {name: bad-reload, reload: graceful}
  - {name: mit, mitigations: [syn-drop, "", syn-drop]}
  - {name: sys, sysctls: {laptop: {net.core.somaxconn: 1}, proxy: {net.ipv4.tcp_tw_recycle: 1}}}
  - {name: svc, services: {api: {maxconn: 1}}}
  - {name: fast, rate: -3}
  - {name: calm, reload: none, mitigations: [tcp_migrate_req]}
  - {name: many, persistent: -1}
`, want: []string{
			`t.yaml:28: matrix[0].name: "Legacy" must match [a-z0-9][a-z0-9_.+-]*`,
			`t.yaml:30: matrix[2].name: duplicate cell "dup" (also matrix[1])`,
			`t.yaml:32: matrix[4].mitigations[1]: empty mitigation name`,
			`t.yaml:32: matrix[4].mitigations[2]: duplicate mitigation "syn-drop"`,
			`t.yaml:33: matrix[5].sysctls[laptop]: no host "laptop" (hosts: client, proxy, backend)`,
			`t.yaml:33: matrix[5].sysctls[proxy][net.ipv4.tcp_tw_recycle]: net.ipv4.tcp_tw_recycle was removed in Linux 4.12; use net.ipv4.tcp_tw_reuse (see docs)`,
			`t.yaml:34: matrix[6].services[api]: no service "api" (services: lb, web)`,
			`t.yaml:35: matrix[7].rate: -3 out of range: want > 0 and <= 100000 connections/s`,
			`t.yaml:36: matrix[8].mitigations[0]: tcp_migrate_req mitigates reloads, but this cell has no reload storm`,
			`t.yaml:37: matrix[9].persistent: -1 out of range 0..10000`,
		}},
		{name: "matrix_strategy_without_reload", edits: []string{"reload:", "reload_off:", "  service: lb", "    service: lb", "  interval: 250ms", "    interval: 250ms", "  jitter: 0s", "    jitter: 0s"},
			tail: "matrix:\n  - {name: mw, reload: master-worker}\n",
			want: []string{
				`t.yaml:23: unknown field "reload_off"; allowed: ` + allowedTop,
				`t.yaml:28: matrix[0].reload: sets a reload strategy, but the scenario has no reload section`,
			}},

		// Long mode.
		{name: "long", tail: "long: {duration: 0s, rate: 200000, repetitions: 0}\n",
			want: []string{
				`t.yaml:27: long.duration: 0s must be > 0`,
				`t.yaml:27: long.rate: 200000 out of range: want > 0 and <= 100000 connections/s`,
				`t.yaml:27: long.repetitions: 0 out of range 1..1000`,
			}},

		// Expectations.
		{name: "expect", tail: `matrix:
  - name: a
  - name: b
expect:
  - {cell: c, failures: some}
  - {cell: a}
  - {cell: a, failures: some, better_than: b}
  - {cell: a, failures: maybe}
  - {cell: a, better_than: a}
  - {cell: a, better_than: b, alpha: 0.7}
  - {cell: a, connect_p99_at_least: 0s}
  - {failures: none}
  - {cell: a, resets: few}
`, want: []string{
			`t.yaml:31: expect[0].cell: no cell "c" (cells: a, b)`,
			`t.yaml:32: expect[1]: want exactly one claim of failures, resets, better_than, fewer_resets_than, connect_p99_at_least; got none`,
			`t.yaml:33: expect[2]: want exactly one claim of failures, resets, better_than, fewer_resets_than, connect_p99_at_least; got failures, better_than`,
			`t.yaml:34: expect[3].failures: "maybe" is not one of some, none`,
			`t.yaml:35: expect[4].better_than: a cell cannot be compared with itself`,
			`t.yaml:36: expect[5].alpha: 0.7 out of range: want > 0 and <= 0.5`,
			`t.yaml:37: expect[6].connect_p99_at_least: 0s must be > 0`,
			`t.yaml:38: expect[7].cell: missing; want one of the cells (a, b)`,
			`t.yaml:39: expect[8].resets: "few" is not one of some, none`,
		}},
		{name: "expect_default_cell", tail: "expect:\n  - {cell: legacy, failures: some}\n",
			want: []string{`t.yaml:28: expect[0].cell: no cell "legacy" (cells: default)`}},

		// Reserved host names (the router's devices are named after hosts).
		{name: "host_router", edits: []string{"  - name: proxy", "  - name: router", "    host: proxy", "    host: router"},
			want: []string{`t.yaml:4: hosts[1].name: "router" is reserved: it names the lab's router (and, in probes, the router's namespace)`}},
		{name: "host_lo", edits: []string{"  - name: proxy", "  - name: lo", "    host: proxy", "    host: lo"},
			want: []string{`t.yaml:4: hosts[1].name: "lo" is reserved: the router's link to a host is named after the host, and lo is the router's loopback device`}},
		{name: "host_ifb", edits: []string{"  - name: proxy", "  - name: flifb100", "    host: proxy", "    host: flifb100"},
			want: []string{`t.yaml:4: hosts[1].name: "flifb100" is reserved: the router's link to a host is named after the host, and the impairment engine names its own devices on the router flifb<N> and flprobe*`}},
		{name: "host_probe", edits: []string{"  - name: client", "  - name: flprobe0", "  from: client", "  from: flprobe0"},
			want: []string{`t.yaml:3: hosts[0].name: "flprobe0" is reserved: the router's link to a host is named after the host, and the impairment engine names its own devices on the router flifb<N> and flprobe*`}},

		// Impairment schedule steps after the workload's end never apply.
		{name: "impair_step_after_end", tail: "impair:\n  links:\n    - host: client\n      to_host:\n        schedule:\n          - {at: 500ms, delay: 5ms}\n          - {at: 1s}\n",
			want: []string{`t.yaml:33: impair.links[0].to_host.schedule[1].at: 1s is not before the workload's end (workload.duration 1s): the step would never apply`}},
		{name: "impair_step_after_warmup_end", edits: []string{"  timeout: 2s", "  warmup: 500ms"},
			tail: "matrix:\n  - name: a\n    impair:\n      links:\n        - host: client\n          from_host:\n            schedule: [{at: 1400ms}, {at: 1500ms}]\n",
			want: []string{`t.yaml:33: matrix[0].impair.links[0].from_host.schedule[1].at: 1.5s is not before the workload's end (warmup 500ms + workload.duration 1s): the step would never apply`}},
		{name: "impair_step_after_long_end", edits: []string{"  duration: 1s", "  duration: 20s"},
			tail: "long: {duration: 10s}\nimpair:\n  links:\n    - {host: client, to_host: {schedule: [{at: 5s}, {at: 15s}]}}\n",
			want: []string{`t.yaml:30: impair.links[0].to_host.schedule[1].at: 15s is not before the workload's end in long mode (long.duration 10s): the step would never apply`}},

		// The record budget.
		{name: "budget", edits: []string{"  rate: 100", "  rate: 100000", "  duration: 1s", "  duration: 1000s"},
			want: []string{`t.yaml:16: workload: the run would record 100000000 attempts (rate x duration x cells x repetitions), more than the record budget of 50000000 per run (~250 bytes each on disk, 25.0 GB); lower one of them`}},
		{name: "budget_long", tail: "matrix:\n  - {name: a, rate: 50000}\n  - {name: b}\nlong: {duration: 1000s}\n",
			want: []string{`t.yaml:30: long: a long run would record 50100000 attempts (rate x duration x cells x repetitions), more than the record budget of 50000000 per run (~250 bytes each on disk, 12.5 GB); lower one of them`}},

		// Reference and analyses.
		{name: "reference", tail: "matrix:\n  - name: a\n  - name: b\nreference: c\n",
			want: []string{`t.yaml:30: reference: no cell "c" (cells: a, b)`}},
		{name: "reference_default", tail: "reference: legacy\n",
			want: []string{`t.yaml:27: reference: no cell "legacy" (cells: default)`}},
		{name: "analyses", tail: "analyses: [capture, \"\", capture]\n",
			want: []string{
				`t.yaml:27: analyses[1]: empty analysis name`,
				`t.yaml:27: analyses[2]: duplicate analysis "capture" (also analyses[0])`,
			}},
		{name: "analyses_not_list", tail: "analyses: capture\n",
			want: []string{`t.yaml:27: analyses: want a list, got "capture"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := edit(t, tt.tail, tt.edits...)
			if tt.name == "empty_file" {
				doc = ""
			}
			s, err := Parse("t.yaml", []byte(doc))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v); want errors:\n%s", s, strings.Join(tt.want, "\n"))
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error is %T, want *Error", err)
			}
			if s != nil {
				t.Errorf("Parse returned a scenario with an error")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestParseReference(t *testing.T) {
	s, err := Load("testdata/reload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Services[1].IsProxy() || s.Services[0].Port != 80 || s.Services[1].Port != 80 {
		t.Errorf("Parse knows kinds: %+v", s.Services)
	}
	if err := Check(s, testVocabulary()); err != nil {
		t.Fatal(err)
	}
	if s.File != "testdata/reload.yaml" || s.Name != "reload" || s.Backend != "netns" || s.Seed != 1 || s.Repetitions != 1 {
		t.Errorf("header: %+v", s)
	}
	if len(s.Hosts) != 3 || s.Hosts[1].Sysctls["net.core.somaxconn"] != "4096" || s.Hosts[0].Addrs != 1 {
		t.Errorf("hosts: %+v", s.Hosts)
	}
	lb := s.Services[1]
	if !lb.IsProxy() || lb.Mode != "http" || lb.Reload != "legacy" || lb.Port != 80 || lb.Backends[0] != "web" {
		t.Errorf("lb: %+v", lb)
	}
	if s.Services[0].IsProxy() || s.Services[0].Mode != "" || s.Services[0].Reload != "" {
		t.Errorf("web got proxy defaults: %+v", s.Services[0])
	}
	w := s.Workload
	if w.Rate != 3000 || w.Duration != 20*time.Second || w.Timeout != 3*time.Second {
		t.Errorf("workload: %+v", w)
	}
	r := s.Reload
	if r == nil || r.Interval != 250*time.Millisecond || r.Jitter != 50*time.Millisecond ||
		r.SynDrop != (SynDrop{Before: 20 * time.Millisecond, After: 150 * time.Millisecond}) {
		t.Errorf("reload: %+v", r)
	}
	if len(s.Matrix) != 6 || s.Matrix[0].Reload != "none" || s.Matrix[4].Mitigations[0] != "tcp_migrate_req" {
		t.Errorf("matrix: %+v", s.Matrix)
	}
	if s.Long == nil || s.Long.Duration != 120*time.Second || s.Long.Repetitions != 3 {
		t.Errorf("long: %+v", s.Long)
	}
	if len(s.Expect) != 6 || s.Expect[5].ConnectP99AtLeast != 900*time.Millisecond || s.Expect[3].BetterThan != "legacy" {
		t.Errorf("expect: %+v", s.Expect)
	}
	for i, e := range s.Expect {
		if e.Alpha != 0.01 {
			t.Errorf("expect[%d].alpha = %g, want default 0.01", i, e.Alpha)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	s, err := Parse("t.yaml", []byte(edit(t, "", "  timeout: 2s", "  warmup: 0s", "  jitter: 0s", "  jitter: 10ms")))
	if err != nil {
		t.Fatal(err)
	}
	if s.Workload.Timeout != 5*time.Second {
		t.Errorf("timeout = %s, want 5s", s.Workload.Timeout)
	}
	if s.Reload.SynDrop != (SynDrop{Before: 20 * time.Millisecond, After: 100 * time.Millisecond}) {
		t.Errorf("syn_drop = %+v", s.Reload.SynDrop)
	}
	if s.Seed != 1 || s.Repetitions != 1 || s.Backend != "netns" {
		t.Errorf("seed %d, repetitions %d, backend %q", s.Seed, s.Repetitions, s.Backend)
	}
	if lb := s.Services[1]; lb.Port != 0 || lb.Reload != "" || lb.Mode != "http" {
		t.Errorf("lb = %+v: Parse applied kind defaults", lb)
	}
	if err := Check(s, testVocabulary()); err != nil {
		t.Fatal(err)
	}
	if lb := s.Services[1]; lb.Port != 80 || lb.Reload != "legacy" {
		t.Errorf("lb = %+v after Check", lb)
	}
	// An explicit seed 0 is kept; explicit zero durations where zero is allowed are kept.
	s, err = Parse("t.yaml", []byte(edit(t, "seed: 0\n", "  jitter: 0s", "  syn_drop: {before: 0s, after: 0}")))
	if err != nil {
		t.Fatal(err)
	}
	if s.Seed != 0 || s.Reload.SynDrop != (SynDrop{}) {
		t.Errorf("seed %d, syn_drop %+v; want explicit zeros kept", s.Seed, s.Reload.SynDrop)
	}
}

func TestParseFixtures(t *testing.T) {
	for _, name := range []string{"reload", "ports", "anchors"} {
		t.Run(name, func(t *testing.T) {
			s, err := Load(filepath.Join("testdata", name+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if err := Check(s, testVocabulary()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParsePorts(t *testing.T) {
	s, err := Load("testdata/ports.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(s, testVocabulary()); err != nil {
		t.Fatal(err)
	}
	proxy := s.Hosts[1].Sysctls
	if proxy["net.ipv4.ip_local_port_range"] != "10000 10999" || proxy["net.ipv4.tcp_tw_reuse"] != "0" {
		t.Errorf("sysctls written as numbers and strings: %q", proxy)
	}
	if db := s.Services[0]; db.Port != 3306 {
		t.Errorf("mariadb default port = %d, want 3306", db.Port)
	}
	if s.Reload != nil {
		t.Errorf("reload = %+v, want nil", s.Reload)
	}
	if got := s.Matrix[2].Sysctls["proxy"]["net.ipv4.tcp_tw_reuse_delay"]; got != "100" {
		t.Errorf("matrix sysctl = %q, want 100", got)
	}
	if s.Expect[2].Alpha != 0.05 {
		t.Errorf("alpha = %g, want 0.05", s.Expect[2].Alpha)
	}
}

func TestParseAnchors(t *testing.T) {
	s, err := Load("testdata/anchors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(s, testVocabulary()); err != nil {
		t.Fatal(err)
	}
	if s.Hosts[2].Sysctls["net.core.somaxconn"] != "4096" {
		t.Errorf("aliased sysctls: %+v", s.Hosts[2])
	}
	lb2 := s.Services[2]
	if lb2.Name != "lb2" || lb2.Kind != "haproxy" || lb2.Host != "proxy" || lb2.Port != 8080 || lb2.Reload != "master-worker" || lb2.Backends[0] != "web" {
		t.Errorf("merged service: %+v", lb2)
	}
	if m := s.Matrix[1]; m.Name != "migrate" || m.Services["lb"]["maxconn"] != "5000" {
		t.Errorf("merged row: %+v", m)
	}
}

func TestRemovedSysctlMessage(t *testing.T) {
	_, err := Parse("x.yaml", []byte(edit(t, "", "  - name: proxy", "  - {name: proxy, sysctls: {net.ipv4.tcp_tw_recycle: 1}}")))
	if err == nil {
		t.Fatal("tcp_tw_recycle accepted")
	}
	for _, want := range []string{"net.ipv4.tcp_tw_recycle", "4.12", "x.yaml:4:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if msg := RemovedSysctls["net.ipv4.tcp_tw_recycle"]; !strings.Contains(msg, "4.12") {
		t.Errorf("RemovedSysctls message %q", msg)
	}
}

// TestGolden shows the whole output for a file with three mistakes.
func TestGolden(t *testing.T) {
	_, err := Load("testdata/three-mistakes.yaml")
	if err == nil {
		t.Fatal("three-mistakes.yaml accepted")
	}
	got := err.Error() + "\n"
	golden := "testdata/three-mistakes.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, rerr := os.ReadFile(golden)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if got != string(want) {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if n := len(err.(*Error).Problems); n != 3 {
		t.Errorf("%d problems, want 3", n)
	}
}

func TestValidateInCode(t *testing.T) {
	s := &Scenario{
		Name:     "code",
		File:     "code.go",
		Hosts:    []Host{{Name: "c"}, {Name: "p"}},
		Services: []Service{{Name: "web", Kind: "nginx", Host: "p"}},
		Workload: Workload{Kind: "http", From: "c", Target: "web", Rate: 10, Duration: time.Second},
	}
	if err := Validate(s); err != nil {
		t.Fatal(err)
	}
	if s.Hosts[0].Addrs != 1 || s.Workload.Timeout != 5*time.Second || s.Seed != 1 {
		t.Errorf("defaults not applied: %+v", s)
	}
	if err := Check(s, testVocabulary()); err != nil {
		t.Fatal(err)
	}
	if s.Services[0].Port != 80 {
		t.Errorf("Check did not apply the default port: %+v", s.Services[0])
	}
	s.Workload.Rate = -1
	err := Validate(s)
	if err == nil || err.Error() != "code.go: workload.rate: -1 out of range: want > 0 and <= 100000 connections/s" {
		t.Errorf("err = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"reload", "ports", "anchors", "three-mistakes"} {
		data, err := os.ReadFile(filepath.Join("testdata", name+".yaml"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(base))
	f.Add([]byte(base + "analyses: [capture, port_budget]\nreference: default\n"))
	f.Add([]byte(strings.Replace(base, "    mode: http", "    mode: tcp", 1) +
		"impair:\n  links:\n    - {host: client, to_host: {schedule: [{at: 500ms, loss: 0.1}]}}\n"))
	f.Add([]byte("a: &a [*a]\nhosts: *a\n"))
	f.Add([]byte("long: &l {<<: *l}\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("hosts:\n  - {name: a, sysctls: {net.ipv4.x: [1]}}\nworkload: {duration: 20}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("f.yaml", data)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) || len(perr.Problems) == 0 {
				t.Fatalf("error %T %v is not a non-empty *Error", err, err)
			}
			for _, p := range perr.Problems {
				if p.Line < 1 || p.File != "f.yaml" || p.Msg == "" {
					t.Fatalf("problem without a line: %+v", p)
				}
			}
			return
		}
		if s == nil {
			t.Fatal("nil scenario without error")
		}
		if err := Validate(s); err != nil {
			t.Fatalf("a parsed scenario does not validate again: %v", err)
		}
		err = Check(s, testVocabulary())
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) || len(perr.Problems) == 0 {
				t.Fatalf("Check error %T %v is not a non-empty *Error", err, err)
			}
			for _, p := range perr.Problems {
				if p.Line < 1 || p.File != "f.yaml" || p.Msg == "" {
					t.Fatalf("Check problem without a line: %+v", p)
				}
			}
			return
		}
		if err := Check(s, testVocabulary()); err != nil {
			t.Fatalf("a checked scenario does not check again: %v", err)
		}
		if reps := max(s.Repetitions, 1) * max(len(s.Matrix), 1); reps <= 1000 {
			Expand(s, false)
		}
	})
}
