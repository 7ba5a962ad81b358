package loadgen

import (
	"strings"
	"testing"
)

func TestWorkloads(t *testing.T) {
	for kind, e := range Workloads {
		if e.Kind != kind || e.Doc == "" || e.New == nil || (e.Protocol != "http" && e.Protocol != "mysql" && e.Protocol != "") {
			t.Errorf("%s: %+v", kind, e)
		}
		// Persistent says the truth: New accepts persistent connections exactly when it is set.
		if _, err := e.New(WorkloadConfig{Persistent: 2}); (err == nil) != e.Persistent {
			t.Errorf("%s: Persistent %v, New with persistent 2: %v", kind, e.Persistent, err)
		}
	}
}

func TestLookupWorkload(t *testing.T) {
	tests := []struct {
		name, kind string
		cfg        WorkloadConfig
		want       Workload // nil: the *Persistent checked below
		wantConns  int
	}{
		{"http", "http", WorkloadConfig{}, HTTP10{}, 0},
		{"http-host", "http", WorkloadConfig{Options: map[string]string{"host": "example"}}, HTTP10{Host: "example"}, 0},
		{"mysql", "mysql", WorkloadConfig{}, MySQL{}, 0},
		{"mysql-options", "mysql", WorkloadConfig{Options: map[string]string{"user": "u", "password": "p",
			"query": "SELECT 2"}}, MySQL{User: "u", Password: "p", Query: "SELECT 2"}, 0},
		{"mysql-persistent", "mysql", WorkloadConfig{Persistent: 3}, nil, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := LookupWorkload(tt.kind)
			if err != nil {
				t.Fatal(err)
			}
			w, err := e.New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, closer := w.(Closer)
			if tt.want != nil {
				if w != tt.want || closer {
					t.Errorf("workload %#v (closer %v), want %#v", w, closer, tt.want)
				}
				return
			}
			p, ok := w.(*Persistent)
			if !ok || p.n != tt.wantConns || !closer {
				t.Fatalf("workload %#v, want a *Persistent of %d connections that is a Closer", w, tt.wantConns)
			}
			if err := w.(Closer).Close(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestLookupWorkloadErrors(t *testing.T) {
	if _, err := LookupWorkload("grpc"); err == nil ||
		!strings.HasPrefix(err.Error(), `unknown workload kind "grpc" (known: check, `) ||
		!strings.Contains(err.Error(), ", http, ") {
		t.Errorf("LookupWorkload(grpc): %v", err)
	}
	tests := []struct {
		name, kind string
		cfg        WorkloadConfig
		want       string
	}{
		{"http-persistent", "http", WorkloadConfig{Persistent: 2}, "http: persistent 2: HTTP/1.0 closes"},
		{"http-option", "http", WorkloadConfig{Options: map[string]string{"path": "/x", "Host": "h"}},
			"http: unknown option(s) Host, path (allowed: host)"},
		{"mysql-option", "mysql", WorkloadConfig{Options: map[string]string{"db": "x"}},
			"mysql: unknown option(s) db (allowed: password, query, user)"},
		{"mysql-password-alone", "mysql", WorkloadConfig{Options: map[string]string{"password": "x"}},
			"mysql: option password without user"},
		{"mysql-negative", "mysql", WorkloadConfig{Persistent: -1}, "mysql: persistent -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Workloads[tt.kind].New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) || w != nil {
				t.Errorf("New: %v, %v; want no workload and an error containing %q", w, err, tt.want)
			}
		})
	}
}
