package runner

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/services"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/loadgen"
	"github.com/faultlab/faultlab/results/analyses"
)

func TestOrderServices(t *testing.T) {
	svcs := []spec.Service{{Name: "edge", Backends: []string{"lb"}}, {Name: "lb", Backends: []string{"web", "db"}},
		{Name: "web"}, {Name: "db"}, {Name: "loop", Backends: []string{"loop2"}}, {Name: "loop2", Backends: []string{"loop"}}}
	var got []string
	for _, sv := range orderServices(svcs) {
		got = append(got, sv.Name)
	}
	want := []string{"web", "db", "lb", "edge", "loop", "loop2"}
	if !slices.Equal(got, want) {
		t.Errorf("order %v, want %v (backends first, a cycle in file order last)", got, want)
	}
}

func TestSelectCells(t *testing.T) {
	all := []spec.Cell{{Name: "a"}, {Name: "b", Rep: 0}, {Name: "b", Rep: 1}, {Name: "c"}}
	got, err := selectCells(all, []string{"c", "b"})
	if err != nil || len(got) != 3 || got[0].Name != "b" || got[1].Rep != 1 || got[2].Name != "c" {
		t.Errorf("select c,b: %v %v, want b#0 b#1 c in run order", got, err)
	}
	if got, _ := selectCells(all, nil); len(got) != 4 {
		t.Errorf("no selection kept %d cells, want 4", len(got))
	}
	_, err = selectCells(all, []string{"a", "zz"})
	if err == nil || err.Error() != `no cell "zz" (cells: a, b, c)` {
		t.Errorf("unknown cell: %v", err)
	}
}

// TestVocabulary checks that spec sees exactly what the registries hold.
func TestVocabulary(t *testing.T) {
	v := Vocabulary()
	for kind, e := range services.Registry {
		k, ok := v.Services[kind]
		if !ok || k.Proxy != (e.Role == services.RoleProxy) || k.DefaultPort != e.DefaultPort ||
			!slices.Equal(k.Strategies, e.Strategies) {
			t.Errorf("service %s: vocabulary %+v, registry %+v", kind, k, e)
		}
	}
	for kind, w := range loadgen.Workloads {
		if k, ok := v.Workloads[kind]; !ok || k.Speaks != w.Protocol {
			t.Errorf("workload %s: vocabulary %+v, registry %+v", kind, k, w)
		}
	}
	if !slices.Equal(v.Analyses, analyses.Names()) || len(v.Services) != len(services.Registry) ||
		len(v.Workloads) != len(loadgen.Workloads) {
		t.Errorf("vocabulary %+v", v)
	}
	for _, m := range v.Mitigations {
		if _, ok := mitigations[m]; !ok {
			t.Errorf("mitigation %s in the vocabulary but not in the table", m)
		}
	}
}

func TestNewProviderUnknown(t *testing.T) {
	_, err := newProvider("vagrant", &spec.Scenario{})
	if !errors.Is(err, harness.ErrUnsupported) || !strings.Contains(err.Error(), "(backends: docker, netns)") {
		t.Errorf("unknown backend: %v", err)
	}
	if p, err := newProvider("", &spec.Scenario{}); err != nil || p.Name() != "netns" {
		t.Errorf("default backend: %v %v", p, err)
	}
}

func TestImages(t *testing.T) {
	s := &spec.Scenario{Hosts: []spec.Host{{Name: "client"}, {Name: "proxy"}, {Name: "db", Image: "mine/db:1"}},
		Services: []spec.Service{{Name: "lb", Kind: "haproxy", Host: "proxy"}, {Name: "db", Kind: "mariadb", Host: "db"}}}
	got := images(s)
	if got["proxy"] != "faultlab/haproxy:bookworm" || got["db"] != "mine/db:1" || got["client"] != "" {
		t.Errorf("images %v: want the role's lab image, the host's own image winning, none for the client", got)
	}
}

// aroundLog records the order of Before and After calls.
type aroundLog struct {
	name string
	log  *[]string
}

func (a aroundLog) Before(context.Context) error {
	*a.log = append(*a.log, a.name+".before")
	return nil
}
func (a aroundLog) After(context.Context) error { *a.log = append(*a.log, a.name+".after"); return nil }

func TestAroundChain(t *testing.T) {
	var log []string
	ch := aroundChain{aroundLog{"a", &log}, aroundLog{"b", &log}}
	_ = ch.Before(context.Background())
	_ = ch.After(context.Background())
	if want := []string{"a.before", "b.before", "b.after", "a.after"}; !slices.Equal(log, want) {
		t.Errorf("calls %v, want %v", log, want)
	}
}

// TestNewChecksBeforeWork: a scenario naming an unknown workload or analysis fails in New with the file and
// line, and no run directory is created.
func TestNewChecksBeforeWork(t *testing.T) {
	src := `name: bad
hosts: [{name: client}, {name: web}]
services: [{name: web, kind: nginx, host: web}]
workload: {kind: grpc, from: client, target: web, rate: 10, duration: 1s}
analyses: [bogus]
`
	s, err := spec.Parse("bad.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	_, err = New(s, Options{OutDir: out})
	// the registries' lists grow: the start of each is enough
	for _, want := range []string{`bad.yaml:4: workload.kind: "grpc" is not one of check, `,
		`bad.yaml:5: analyses[0]: "bogus" is not one of capture, `} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New: %v, want %q", err, want)
		}
	}
	if entries, _ := filepathGlob(out); len(entries) != 0 {
		t.Errorf("New created %v before failing", entries)
	}
}

func filepathGlob(dir string) ([]string, error) { return filepath.Glob(filepath.Join(dir, "*")) }

func TestPlannedCellsMatrixOrder(t *testing.T) {
	s := &spec.Scenario{Matrix: []spec.CellSpec{{Name: "b"}, {Name: "a"}}}
	cells := []spec.Cell{{Name: "a", Rep: 0}, {Name: "b", Rep: 0}, {Name: "b", Rep: 1}, {Name: "a", Rep: 1}}
	got := plannedCells(s, cells)
	want := "b0 b1 a0 a1 "
	var g string
	for _, c := range got {
		g += c.Name + string(rune('0'+c.Rep)) + " "
	}
	if g != want {
		t.Errorf("planned %q, want %q (matrix order, rounds inner)", g, want)
	}
}

// TestSequentialPlan: an --until-decided run plans the rounds its budget holds, before the first round, with
// the fixed run's block; a budget that holds no round, or repetitions, are errors before any work.
func TestSequentialPlan(t *testing.T) {
	src := `name: seq
hosts: [{name: client}, {name: proxy}, {name: backend}]
services:
  - {name: web, kind: nginx, host: backend}
  - {name: lb, kind: haproxy, host: proxy, backends: [web]}
workload: {kind: http, from: client, target: lb, rate: 100, duration: 30s}
rounds: 3
matrix: [{name: a}, {name: b}, {name: c}]
`
	s, err := spec.Parse("seq.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Check(s, Vocabulary()); err != nil {
		t.Fatal(err)
	}
	fixed := spec.Expand(s, false)
	// a round: 3 cells of a 10 s block plus the planned overhead each
	round := 3 * (10*time.Second + cellOverhead)
	cells, plan, err := sequentialCells(s, Options{Budget: 10*round + round/2}, fixed)
	if err != nil {
		t.Fatal(err)
	}
	if plan.MaxLooks != 10 || len(cells) != 30 || plan.Budget != (10*round+round/2).String() {
		t.Errorf("plan %+v with %d cells, want 10 looks of 3 cells", plan, len(cells))
	}
	if cells[29].Rep != 9 || cells[0].Scenario.Workload.Duration != 10*time.Second {
		t.Errorf("last cell rep %d, block %s", cells[29].Rep, cells[0].Scenario.Workload.Duration)
	}
	// --cells shrinks the round, so more of them fit
	if _, plan, _ := sequentialCells(s, Options{Budget: round, Cells: []string{"a"}}, fixed); plan.MaxLooks != 3 {
		t.Errorf("one of three cells: %d looks, want 3", plan.MaxLooks)
	}
	if _, _, err := sequentialCells(s, Options{Budget: time.Second}, fixed); err == nil ||
		!strings.Contains(err.Error(), "does not hold one round") {
		t.Errorf("a 1 s budget: %v", err)
	}
	s.Rounds, s.Repetitions = 1, 2
	if _, _, err := sequentialCells(s, Options{}, spec.Expand(s, false)); err == nil ||
		!strings.Contains(err.Error(), "repetitions") {
		t.Errorf("repetitions: %v", err)
	}
}

func TestRoundClock(t *testing.T) {
	c := newRoundClock(0)
	if c.budget != DefaultBudget {
		t.Errorf("budget %s", c.budget)
	}
	var got []bool
	for _, rep := range []int{0, 0, 0, 1, 1, 2} {
		got = append(got, c.boundary(rep))
	}
	if !slices.Equal(got, []bool{false, false, false, true, false, true}) {
		t.Errorf("boundaries %v: a new round after a finished one only", got)
	}
}
