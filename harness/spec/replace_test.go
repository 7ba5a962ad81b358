package spec

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// replaceVocabulary is the test vocabulary with tengine reloadable, as the lab's driver is (-s reload).
func replaceVocabulary() Vocabulary {
	voc := testVocabulary()
	k := voc.Services["tengine"]
	k.Strategies = []string{"reload"}
	voc.Services["tengine"] = k
	return voc
}

// parseReplace parses and checks doc: Parse's errors (structure) or Check's.
func parseReplace(doc string) (*Scenario, error) {
	s, err := Parse("t.yaml", []byte(doc))
	if err != nil {
		return nil, err
	}
	return s, Check(s, replaceVocabulary())
}

func TestReplaceExpand(t *testing.T) {
	doc := edit(t, `matrix:
  - name: haproxy
  - name: tengine
    replace:
      lb: {kind: tengine, options: {check: "false"}}
    services: {lb: {worker_processes: "2"}}
  - name: same
    replace:
      lb: {kind: haproxy, options: {nbthread: "2"}}
  - name: direct
    reload: none
    replace:
      lb: {kind: nginx}
`, "    backends: [web]", "    backends: [web]\n    reload: master-worker\n    options: {maxconn: \"100\"}")
	s, err := parseReplace(doc)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	cells := Expand(s, false)
	lb := func(i int) Service { return cells[i].Scenario.Services[1] }
	want := []Service{
		{Name: "lb", Kind: "haproxy", Host: "proxy", Port: 80, Mode: "http", Backends: []string{"web"},
			Reload: "master-worker", Options: map[string]string{"maxconn": "100"}, Proxy: true},
		{Name: "lb", Kind: "tengine", Host: "proxy", Port: 80, Mode: "http", Backends: []string{"web"},
			Reload: "reload", Options: map[string]string{"check": "false", "worker_processes": "2"}, Proxy: true},
		{Name: "lb", Kind: "haproxy", Host: "proxy", Port: 80, Mode: "http", Backends: []string{"web"},
			Reload: "master-worker", Options: map[string]string{"maxconn": "100", "nbthread": "2"}, Proxy: true},
		{Name: "lb", Kind: "nginx", Host: "proxy", Port: 80},
	}
	for i, w := range want {
		if got := lb(i); !reflect.DeepEqual(got, w) {
			t.Errorf("%s: lb = %+v\nwant %+v", cells[i].Name, got, w)
		}
	}
	if cells[1].Scenario.Reload == nil || cells[3].Scenario.Reload != nil {
		t.Errorf("reload storms: tengine %v, direct %v", cells[1].Scenario.Reload, cells[3].Scenario.Reload)
	}
	if got := s.Services[1]; got.Kind != "haproxy" || got.Options["check"] != "" {
		t.Errorf("the scenario's own lb changed: %+v", got)
	}
}

func TestReplaceErrors(t *testing.T) {
	tests := []struct {
		name, tail string
		want       []string
	}{
		{name: "unknown_service", tail: "      db: {kind: mariadb}\n",
			want: []string{`t.yaml:30: matrix[0].replace[db]: no service "db" (services: lb, web)`}},
		{name: "kind_missing", tail: "      lb: {host: proxy}\n",
			want: []string{`t.yaml:30: matrix[0].replace[lb].kind: missing; a replacement names the kind of service it puts in place of lb`}},
		{name: "kind_unknown", tail: "      lb: {kind: envoy}\n",
			want: []string{`t.yaml:30: matrix[0].replace[lb].kind: "envoy" is not one of haproxy, mariadb, nginx, tengine`}},
		{name: "option_of_old_kind", tail: "      lb: {kind: tengine, options: {maxconn: \"10\"}}\n",
			want: []string{`t.yaml:30: matrix[0].replace[lb].options[maxconn]: unknown option "maxconn" for tengine; allowed: ` +
				"binary, check, check_fall, check_http_send, check_interval, check_keepalive_requests, check_rise, " +
				"check_timeout, worker_processes"}},
		{name: "strategy_of_old_kind", tail: "      lb: {kind: tengine, reload: legacy}\n",
			want: []string{`t.yaml:30: matrix[0].replace[lb].reload: "legacy" is not one of reload`}},
		{name: "row_strategy", tail: "      lb: {kind: tengine}\n    reload: master-worker\n",
			want: []string{`t.yaml:31: matrix[0].reload: "master-worker" is not one of none, reload (the strategies of ` +
				`tengine, which this row puts in place of lb)`}},
		{name: "row_option", tail: "      lb: {kind: tengine}\n    services: {lb: {maxconn: \"1\"}}\n",
			want: []string{`t.yaml:31: matrix[0].services[lb][maxconn]: unknown option "maxconn" for tengine; allowed: ` +
				"binary, check, check_fall, check_http_send, check_interval, check_keepalive_requests, check_rise, " +
				"check_timeout, worker_processes"}},
		{name: "reloaded_not_proxy", tail: "      lb: {kind: nginx}\n",
			want: []string{`t.yaml:29: matrix[0].replace: in this cell, reload.service: service "lb" is nginx, not a proxy (haproxy, tengine)`}},
		{name: "backend_speaks_mysql", tail: "      web: {kind: mariadb, port: 3306}\n",
			want: []string{`t.yaml:29: matrix[0].replace: in this cell, services[1].backends[0]: backend "web" is mariadb, ` +
				`which speaks mysql: the proxy's mode must be tcp`}},
		{name: "port_conflict", tail: "      lb: {kind: tengine, host: backend}\n",
			want: []string{`t.yaml:30: matrix[0].replace[lb].port: port 80 on host backend is already used by service web`}},
		{name: "bad_refs", tail: "      lb: {kind: tengine, host: nowhere, port: 70000, backends: [web, web, lb, db]}\n",
			want: []string{
				`t.yaml:30: matrix[0].replace[lb].host: no host "nowhere" (hosts: client, proxy, backend)`,
				`t.yaml:30: matrix[0].replace[lb].port: 70000 out of range 1..65535`,
				`t.yaml:30: matrix[0].replace[lb].backends[1]: duplicate backend "web"`,
				`t.yaml:30: matrix[0].replace[lb].backends[2]: a proxy cannot be its own backend`,
				`t.yaml:30: matrix[0].replace[lb].backends[3]: no service "db" (services: lb, web)`,
			}},
		{name: "two_strategies", tail: "      lb: {kind: tengine, reload: reload}\n    reload: reload\n",
			want: []string{`t.yaml:30: matrix[0].replace[lb].reload: both matrix[0].reload and this set the reloaded ` +
				`service's strategy; keep one`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseReplace(base + "matrix:\n  - name: c\n    replace:\n" + tt.tail)
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %v (%T), want *Error", err, err)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
