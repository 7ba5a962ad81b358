package spec

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// testVocabulary mirrors the lab's registries (harness/services, loadgen, results/analyses) as they are
// when this was written; spec cannot import them.
func testVocabulary() Vocabulary {
	return Vocabulary{
		Services: map[string]ServiceKind{
			"haproxy": {Proxy: true, Strategies: []string{"legacy", "legacy-st", "socket-transfer", "master-worker"},
				DefaultPort: 80, Options: []string{"maxconn", "nbthread", "timeout_client", "timeout_server",
					"timeout_connect", "check", "check_inter", "mysql_check_user", "source", "sources", "log_level",
					"log_health", "global", "defaults", "binary"}},
			"tengine": {Proxy: true, DefaultPort: 80, Options: []string{"binary", "worker_processes", "check",
				"check_interval", "check_timeout", "check_rise", "check_fall", "check_keepalive_requests",
				"check_http_send"}},
			"nginx":   {Speaks: "http", DefaultPort: 80, Options: []string{"worker_processes", "body_size", "binary"}},
			"mariadb": {Speaks: "mysql", DefaultPort: 3306},
		},
		Workloads: map[string]WorkloadKind{
			"http":  {Speaks: "http"},
			"mysql": {Speaks: "mysql", Persistent: true},
		},
		Analyses:    []string{"port_budget", "capture"},
		Mitigations: []string{"tcp_migrate_req", "syn-drop"},
		Kernels:     []string{"debian-6.1", "debian-6.12"},
	}
}

// parseCheck parses doc (which must parse) and checks it with the test vocabulary.
func parseCheck(t *testing.T, doc string) (*Scenario, error) {
	t.Helper()
	s, err := Parse("t.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s, Check(s, testVocabulary())
}

// mustCheck parses and checks doc, which must be valid.
func mustCheck(t *testing.T, doc string) *Scenario {
	t.Helper()
	s, err := parseCheck(t, doc)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return s
}

func TestCheckBase(t *testing.T) {
	s := mustCheck(t, base)
	web, lb := s.Services[0], s.Services[1]
	if web.IsProxy() || web.Port != 80 || web.Mode != "" || web.Reload != "" {
		t.Errorf("web = %+v", web)
	}
	if !lb.IsProxy() || lb.Port != 80 || lb.Mode != "http" || lb.Reload != "legacy" {
		t.Errorf("lb = %+v, want a proxy with port 80, mode http, reload legacy", lb)
	}
	if err := Check(s, testVocabulary()); err != nil {
		t.Errorf("a checked scenario does not check again: %v", err)
	}
}

func TestCheckErrors(t *testing.T) {
	const haproxyOptions = "binary, check, check_inter, defaults, global, log_health, log_level, maxconn, " +
		"mysql_check_user, nbthread, source, sources, timeout_client, timeout_connect, timeout_server"
	tests := []struct {
		name  string
		tail  string
		edits []string
		want  []string
	}{
		// Services.
		{name: "service_kind", edits: []string{"    kind: nginx", "    kind: apache"},
			want: []string{`t.yaml:8: services[0].kind: "apache" is not one of haproxy, mariadb, nginx, tengine`}},
		{name: "service_kind_missing", edits: []string{"    kind: nginx", `    kind: ""`},
			want: []string{`t.yaml:8: services[0].kind: missing; want one of haproxy, mariadb, nginx, tengine`}},
		{name: "service_port_conflict", edits: []string{"    host: backend", "    host: proxy"},
			want: []string{`t.yaml:11: services[1].port: port 80 on host proxy is already used by service web`}},
		{name: "service_port_conflict_default", edits: []string{"    host: backend", "    host: proxy", "    port: 80", "    options: {}"},
			want: []string{`t.yaml:11: services[1].port: port 80 on host proxy is already used by service web`}},
		{name: "service_mode", edits: []string{"    mode: http", "    mode: udp"},
			want: []string{`t.yaml:14: services[1].mode: "udp" is not one of http, tcp`}},
		{name: "service_mode_not_proxy", edits: []string{"    port: 80", "    mode: tcp"},
			want: []string{`t.yaml:10: services[0].mode: mode applies only to proxies (haproxy, tengine), not nginx`}},
		{name: "service_reload_not_proxy", edits: []string{"    port: 80", "    reload: legacy"},
			want: []string{`t.yaml:10: services[0].reload: reload applies only to proxies (haproxy, tengine), not nginx`}},
		{name: "service_backends_not_proxy", edits: []string{"    port: 80", "    backends: [lb]"},
			want: []string{`t.yaml:10: services[0].backends: backends applies only to proxies (haproxy, tengine), not nginx`}},
		{name: "service_no_backends", edits: []string{"    backends: [web]", "    backends: []"},
			want: []string{`t.yaml:15: services[1].backends: a proxy needs at least one backend service`}},
		{name: "service_mariadb_http", edits: []string{"    kind: nginx", "    kind: mariadb"},
			want: []string{`t.yaml:15: services[1].backends[0]: backend "web" is mariadb, which speaks mysql: the proxy's mode must be tcp`}},
		{name: "service_reload", edits: []string{"    mode: http", "    reload: graceful"},
			want: []string{`t.yaml:14: services[1].reload: "graceful" is not one of legacy, legacy-st, socket-transfer, master-worker`}},
		{name: "service_reload_tengine", edits: []string{"    kind: haproxy", "    kind: tengine", "    mode: http", "    reload: legacy"},
			want: []string{
				`t.yaml:14: services[1].reload: tengine cannot be reloaded: it has no reload strategies`,
				`t.yaml:24: reload.service: service "lb" is tengine, which cannot be reloaded (no reload strategies)`,
			}},
		{name: "service_option", edits: []string{"    mode: http", "    options: {maxconns: 10, maxconn: 10}"},
			want: []string{`t.yaml:14: services[1].options[maxconns]: unknown option "maxconns" for haproxy; allowed: ` + haproxyOptions}},
		{name: "service_option_unchecked", edits: []string{"    mode: http", "    mode: tcp", "    kind: nginx", "    kind: mariadb", "    port: 80", "    options: {anything: 1}", "  kind: http", "  kind: mysql"}},
		{name: "service_mixed_backends", edits: []string{"  - name: web", "  - {name: db, kind: mariadb, host: backend}\n  - name: web", "    mode: http", "    mode: tcp", "    backends: [web]", "    backends: [web, db]"},
			want: []string{`t.yaml:16: services[2].backends: backends speak different protocols (web speaks http; db speaks mysql); a proxy forwards one`}},

		// Workload.
		{name: "workload_kind", edits: []string{"  kind: http", "  kind: grpc"},
			want: []string{`t.yaml:17: workload.kind: "grpc" is not one of http, mysql`}},
		{name: "workload_kind_missing", edits: []string{"  kind: http", `  kind: ""`},
			want: []string{`t.yaml:17: workload.kind: missing; want one of http, mysql`}},
		{name: "workload_mysql_to_http", edits: []string{"  kind: http", "  kind: mysql"},
			want: []string{`t.yaml:19: workload.target: the mysql workload needs a service that speaks mysql (mariadb, or a proxy in tcp mode in front of one), not "lb", which speaks http`}},
		{name: "workload_mysql_to_tcp_http", edits: []string{"  kind: http", "  kind: mysql", "    mode: http", "    mode: tcp"},
			want: []string{`t.yaml:19: workload.target: the mysql workload needs a service that speaks mysql (mariadb, or a proxy in tcp mode in front of one), not "lb", which speaks http`}},
		{name: "workload_http_to_mariadb", edits: []string{"    kind: nginx", "    kind: mariadb", "    mode: http", "    mode: tcp", "  target: lb", "  target: web"},
			want: []string{`t.yaml:19: workload.target: the http workload needs a service that speaks http (nginx, or a proxy in front of one), not "web", which speaks mysql`}},
		{name: "workload_http_to_tcp_mariadb", edits: []string{"    kind: nginx", "    kind: mariadb", "    mode: http", "    mode: tcp"},
			want: []string{`t.yaml:19: workload.target: the http workload needs a service that speaks http (nginx, or a proxy in front of one), not "lb", which speaks mysql`}},
		{name: "workload_mysql_through_two_proxies", edits: []string{"    kind: nginx", "    kind: mariadb", "    mode: http", "    mode: tcp", "  kind: http", "  kind: mysql", "  target: lb", "  target: lb2",
			"workload:", "  - {name: lb2, kind: haproxy, host: client, mode: tcp, backends: [lb]}\nworkload:"}},
		{name: "workload_persistent", edits: []string{"  timeout: 2s", "  persistent: 10"},
			want: []string{`t.yaml:22: workload.persistent: persistent connections are implemented for the mysql workload only`}},

		// Reload storm and matrix.
		{name: "reload_not_proxy", edits: []string{"  service: lb", "  service: web"},
			want: []string{`t.yaml:24: reload.service: service "web" is nginx, not a proxy (haproxy, tengine)`}},
		{name: "matrix", tail: `matrix:
  - {name: bad-reload, reload: graceful}
  - {name: mw, reload: master-worker}
  - {name: off, reload: none}
  - {name: mit, mitigations: [syn-drop, foo, tcp_migrate_req]}
  - {name: svc, services: {lb: {maxconn: 1, threads: 2}, web: {body_size: 1m}}}
  - {name: many, persistent: 5}
`, want: []string{
			`t.yaml:28: matrix[0].reload: "graceful" is not one of none, legacy, legacy-st, socket-transfer, master-worker`,
			`t.yaml:31: matrix[3].mitigations[1]: "foo" is not one of syn-drop, tcp_migrate_req`,
			`t.yaml:32: matrix[4].services[lb][threads]: unknown option "threads" for haproxy; allowed: ` + haproxyOptions,
			`t.yaml:33: matrix[5].persistent: persistent connections are implemented for the mysql workload only`,
		}},

		// Analyses.
		{name: "analyses", tail: "analyses: [port_budget, zero_window]\n",
			want: []string{`t.yaml:27: analyses[1]: "zero_window" is not one of capture, port_budget`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseCheck(t, edit(t, tt.tail, tt.edits...))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check succeeded (%+v); want errors:\n%s", s, strings.Join(tt.want, "\n"))
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error is %T, want *Error", err)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestCheckVocabulary shows that names come from the vocabulary only: a kind the lab adds is accepted, one
// it removes is refused, and a kind without a default port needs one.
func TestCheckVocabulary(t *testing.T) {
	voc := testVocabulary()
	voc.Services["echo"] = ServiceKind{Speaks: "http"}
	voc.Services["envoy"] = ServiceKind{Proxy: true, Strategies: []string{"hot-restart"}, DefaultPort: 10000}
	voc.Workloads["download"] = WorkloadKind{Speaks: "http", Persistent: true}
	voc.Mitigations = append(voc.Mitigations, "drain")
	voc.Analyses = nil
	doc := edit(t, "matrix:\n  - {name: a, mitigations: [drain], persistent: 3}\n",
		"    kind: nginx", "    kind: echo", "    port: 80", "    port: 8080", "    kind: haproxy", "    kind: envoy",
		"  kind: http", "  kind: download")
	s, err := Parse("t.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(s, voc); err != nil {
		t.Fatal(err)
	}
	if lb := s.Services[1]; !lb.IsProxy() || lb.Port != 10000 || lb.Reload != "hot-restart" {
		t.Errorf("lb = %+v", lb)
	}

	s, err = Parse("t.yaml", []byte(edit(t, "analyses: [capture]\n", "    port: 80", "    options: {}")))
	if err != nil {
		t.Fatal(err)
	}
	voc.Services["nginx"] = ServiceKind{Speaks: "http"}
	delete(voc.Services, "tengine")
	err = Check(s, voc)
	want := "t.yaml:7: services[0].port: missing; nginx has no default port\n" +
		`t.yaml:27: analyses[0]: "capture" is not one of the lab's (it knows none)`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want:\n%s", err, want)
	}
}

func TestCheckInCode(t *testing.T) {
	s := &Scenario{
		Name:     "code",
		File:     "code.go",
		Hosts:    []Host{{Name: "c"}, {Name: "p"}},
		Services: []Service{{Name: "web", Kind: "nginx", Host: "p"}, {Name: "db", Kind: "mariadb", Host: "p"}},
		Workload: Workload{Kind: "http", From: "c", Target: "web", Rate: 10, Duration: time.Second},
	}
	if err := Validate(s); err != nil {
		t.Fatal(err)
	}
	if err := Check(s, testVocabulary()); err != nil {
		t.Fatal(err)
	}
	if s.Services[0].Port != 80 || s.Services[1].Port != 3306 {
		t.Errorf("default ports not applied: %+v", s.Services)
	}
	s.Workload.Kind = "grpc"
	err := Check(s, testVocabulary())
	if err == nil || err.Error() != `code.go: workload.kind: "grpc" is not one of http, mysql` {
		t.Errorf("err = %v", err)
	}
}
