package spec

import (
	"reflect"
	"strings"
	"testing"
)

// axesBase is a scenario head for the axes tests: a reloaded HAProxy in front of nginx.
const axesBase = `name: axes
hosts:
  - name: client
  - name: proxy
  - name: backend
services:
  - {name: web, kind: nginx, host: backend}
  - {name: lb, kind: haproxy, host: proxy, backends: [web]}
workload: {kind: http, from: client, target: lb, rate: 500, duration: 4s}
reload: {service: lb, interval: 250ms}
`

const axes2x2x2 = axesBase + `axes:
  - {name: strategy, reload: [legacy, socket-transfer]}
  - {rate: [1000, 3000]}
  - name: reuse
    levels:
      - {name: reuse-off, sysctls: {proxy: {net.ipv4.tcp_tw_reuse: "0"}}}
      - {name: reuse-on, sysctls: {proxy: {net.ipv4.tcp_tw_reuse: "1"}}, services: {lb: {maxconn: "2000"}}}
`

func names(cells []Cell) []string {
	var out []string
	for _, c := range cells {
		out = append(out, c.Name)
	}
	return out
}

func TestAxesProduct(t *testing.T) {
	s, err := parseCheck(t, axes2x2x2)
	if err != nil {
		t.Fatal(err)
	}
	cells := Expand(s, false)
	want := []string{
		"legacy.rate1000.reuse-off", "legacy.rate1000.reuse-on", "legacy.rate3000.reuse-off", "legacy.rate3000.reuse-on",
		"socket-transfer.rate1000.reuse-off", "socket-transfer.rate1000.reuse-on",
		"socket-transfer.rate3000.reuse-off", "socket-transfer.rate3000.reuse-on",
	}
	if got := names(cells); !reflect.DeepEqual(got, want) {
		t.Fatalf("cells %v\nwant %v", got, want)
	}
	for _, c := range cells {
		if !cellName.MatchString(c.Name) || strings.ContainsAny(c.Name, " /") {
			t.Errorf("%s: not usable as a subtest name", c.Name)
		}
		parts := strings.Split(c.Name, ".")
		wantAxes := map[string]string{"strategy": parts[0], "rate": parts[1], "reuse": parts[2]}
		if !reflect.DeepEqual(c.Axes, wantAxes) {
			t.Errorf("%s: axes %v, want %v", c.Name, c.Axes, wantAxes)
		}
		sc := c.Scenario
		if got := sc.Services[1].Reload; got != parts[0] {
			t.Errorf("%s: strategy %q", c.Name, got)
		}
		if got := sc.Workload.Rate; (got == 1000) != (parts[1] == "rate1000") || got != 1000 && got != 3000 {
			t.Errorf("%s: rate %g", c.Name, got)
		}
		reuse := sc.Hosts[1].Sysctls["net.ipv4.tcp_tw_reuse"]
		if want := map[string]string{"reuse-off": "0", "reuse-on": "1"}[parts[2]]; reuse != want {
			t.Errorf("%s: tcp_tw_reuse %q, want %q", c.Name, reuse, want)
		}
		if got, on := sc.Services[1].Options["maxconn"], parts[2] == "reuse-on"; (got == "2000") != on {
			t.Errorf("%s: maxconn %q", c.Name, got)
		}
	}
}

func TestAxesExplicitCellsAndExclusions(t *testing.T) {
	doc := axes2x2x2 + `exclude:
  - {strategy: socket-transfer, rate: rate3000}
  - {reuse: reuse-on, rate: rate1000, strategy: legacy}
matrix:
  - {name: baseline, reload: none}
reference: baseline
expect:
  - {cell: socket-transfer.rate1000.reuse-on, better_than: legacy.rate3000.reuse-on}
`
	s, err := parseCheck(t, doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"legacy.rate1000.reuse-off", "legacy.rate3000.reuse-off", "legacy.rate3000.reuse-on",
		"socket-transfer.rate1000.reuse-off", "socket-transfer.rate1000.reuse-on", "baseline"}
	cells := Expand(s, false)
	if got := names(cells); !reflect.DeepEqual(got, want) {
		t.Fatalf("cells %v\nwant %v", got, want)
	}
	if last := cells[len(cells)-1]; last.Axes != nil || last.Scenario.Reload != nil {
		t.Errorf("baseline: axes %v, reload %v", last.Axes, last.Scenario.Reload)
	}
}

func TestAxesErrors(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string // each a line of the error, "t.yaml:LINE: field: ..." prefix
	}{
		{"unknown-host-in-level", axesBase + `axes:
  - {rate: [1000, 2000]}
  - name: reuse
    levels:
      - {name: on, sysctls: {proxz: {net.ipv4.tcp_tw_reuse: "1"}}}
`, []string{`t.yaml:15: axes[1].levels[0].sysctls[proxz]: no host "proxz"`}},
		{"removed-sysctl", axesBase + `axes:
  - {sysctl: {host: proxy, name: net.ipv4.tcp_tw_recycle, values: ["0", "1"]}}
`, []string{`t.yaml:12: axes[0].sysctl.values[0]: net.ipv4.tcp_tw_recycle was removed`,
			`t.yaml:12: axes[0].sysctl.values[1]: net.ipv4.tcp_tw_recycle was removed`}},
		{"two-axes-same-field", axesBase + `axes:
  - {rate: [1000]}
  - name: fast
    levels: [{name: fast, rate: 9000}]
`, []string{`t.yaml:13: axes[1]: level fast sets rate, which axes[0].rate[0] already sets`}},
		{"two-shorthands", axesBase + `axes:
  - {rate: [1000], reload: [legacy]}
`, []string{`t.yaml:12: axes[0]: give exactly one of levels, reload, rate, sysctl`}},
		{"bad-exclusion", axesBase + `axes:
  - {rate: [1000, 2000]}
exclude:
  - {rate: rate3000}
  - {speed: rate1000}
`, []string{`t.yaml:14: exclude[0][rate]: no level "rate3000" on axis rate (levels: rate1000, rate2000)`,
			`t.yaml:15: exclude[1][speed]: no axis "speed" (axes: rate)`}},
		{"level-name", axesBase + `axes:
  - levels: [{name: A.b}]
`, []string{`t.yaml:12: axes[0].name: "" must match`, `t.yaml:12: axes[0].levels[0]: level "A.b" must match`}},
		{"unknown-strategy", axesBase + `axes:
  - {reload: [legacy, hot]}
  - {rate: [1000, 2000]}
`, []string{`t.yaml:12: axes[0].reload[1]: "hot" is not one of none, legacy`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("t.yaml", []byte(tc.doc))
			if err == nil {
				err = Check(s, testVocabulary())
			}
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%s", len(lines), len(tc.want), err)
			}
			for _, w := range tc.want {
				found := false
				for _, l := range lines {
					found = found || strings.HasPrefix(l, w)
				}
				if !found {
					t.Errorf("no problem starting %q in:\n%s", w, err)
				}
			}
		})
	}
}

func TestSetAddsSysctlAxis(t *testing.T) {
	s := load(t, "testdata/reload.yaml")
	a, err := ParseSet("proxy:net.ipv4.tcp_tw_reuse=0,1")
	if err != nil {
		t.Fatal(err)
	}
	if err := AddAxis(s, a, "--set proxy:net.ipv4.tcp_tw_reuse=0,1"); err != nil {
		t.Fatal(err)
	}
	if err := Check(s, testVocabulary()); err != nil {
		t.Fatal(err)
	}
	cells := Expand(s, false)
	if len(cells) != 12 {
		t.Fatalf("%d cells, want 6 x 2: %v", len(cells), names(cells))
	}
	for i, c := range cells {
		lv := []string{"0", "1"}[i%2]
		if want := []string{"baseline", "legacy", "socket-transfer", "master-worker", "tcp_migrate_req",
			"syn-drop"}[i/2] + ".tcp_tw_reuse-" + lv; c.Name != want {
			t.Errorf("cell %d: %s, want %s", i, c.Name, want)
		}
		if got := c.Scenario.Hosts[1].Sysctls; got["net.ipv4.tcp_tw_reuse"] != lv || got["net.core.somaxconn"] != "4096" {
			t.Errorf("%s: proxy sysctls %v", c.Name, got)
		}
		if c.Axes["tcp_tw_reuse"] != "tcp_tw_reuse-"+lv {
			t.Errorf("%s: axes %v", c.Name, c.Axes)
		}
	}
	if len(s.Expect) != 12 || s.Expect[6].Cell != "socket-transfer.tcp_tw_reuse-0" ||
		s.Expect[6].BetterThan != "legacy.tcp_tw_reuse-0" || s.Expect[7].BetterThan != "legacy.tcp_tw_reuse-1" {
		t.Errorf("claims not crossed with the axis: %+v", s.Expect)
	}
}

func TestSetBareScenarioAndErrors(t *testing.T) {
	doc := strings.Replace(axesBase, "reload: {service: lb, interval: 250ms}\n", "", 1) +
		"matrix:\n  - {name: wide, sysctls: {proxy: {net.ipv4.tcp_tw_reuse: \"1\"}}}\n"
	s, err := parseCheck(t, strings.Replace(axesBase, "reload: {service: lb, interval: 250ms}\n", "", 1))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := ParseSet("proxy:net.ipv4.ip_local_port_range=1024 65535,40000 40999")
	if err := AddAxis(s, a, "--set X"); err != nil {
		t.Fatal(err)
	}
	want := []string{"ip_local_port_range-1024-65535", "ip_local_port_range-40000-40999"}
	if got := names(Expand(s, false)); !reflect.DeepEqual(got, want) {
		t.Errorf("cells %v, want %v", got, want)
	}
	for _, tc := range []struct{ set, doc, want string }{
		{"proxy:net.ipv4.tcp_tw_recycle=0,1", axesBase, "--set proxy:net.ipv4.tcp_tw_recycle=0,1 (value 1): net.ipv4.tcp_tw_recycle"},
		{"proxz:net.ipv4.tcp_tw_reuse=0,1", axesBase, `--set proxz:net.ipv4.tcp_tw_reuse=0,1: sysctl.host: no host "proxz"`},
		{"proxy:net.ipv4.tcp_tw_reuse=0,1", doc, "--set proxy:net.ipv4.tcp_tw_reuse=0,1: level tcp_tw_reuse-0 sets sysctls[proxy][net.ipv4.tcp_tw_reuse], which matrix[0].sysctls[proxy][net.ipv4.tcp_tw_reuse] already sets"},
		{"proxy:net.ipv4.tcp_tw_reuse", axesBase, "want HOST:SYSCTL=V1,V2"},
	} {
		s, err := parseCheck(t, tc.doc)
		if err != nil {
			t.Fatal(err)
		}
		a, err := ParseSet(tc.set)
		if err == nil {
			err = AddAxis(s, a, "--set "+tc.set)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: error %v, want one containing %q", tc.set, err, tc.want)
		}
	}
}

// fill sets every field of v to a non-zero value.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Int, reflect.Int64:
		v.SetInt(1)
	case reflect.Float64:
		v.SetFloat(1)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e)
		v.SetMapIndex(reflect.ValueOf("k"), e)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	}
}

// TestAxisLevelCarriesEveryField: a level sets every field of a matrix row it has (a field added to CellSpec
// later must be merged by join2 too, or an axis would drop it silently).
func TestAxisLevelCarriesEveryField(t *testing.T) {
	var full CellSpec
	fill(reflect.ValueOf(&full).Elem())
	full.Axes = nil
	g, clash := join2(genRow{origin: &rowOrigin{fields: map[string]string{}}}, level{name: "l", row: full, path: "p"}, "ax")
	if clash != "" {
		t.Fatalf("clash %s", clash)
	}
	want := full
	want.Name, want.Axes = "l", map[string]string{"ax": "l"}
	if !reflect.DeepEqual(g.row, want) {
		t.Errorf("the generated row lost fields of its level:\n got %+v\nwant %+v", g.row, want)
	}
	// and a second level setting all of them clashes on the first field
	if _, clash := join2(g, level{name: "m", row: full, path: "q"}, "ax2"); clash == "" {
		t.Errorf("two levels setting every field do not clash")
	}
	if f := ownFields(full, "matrix[0]"); len(f) < reflect.TypeFor[CellSpec]().NumField()-2 {
		t.Errorf("ownFields lists %d fields of a row setting all: %v", len(f), f)
	}
}
