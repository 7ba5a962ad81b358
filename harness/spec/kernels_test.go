package spec

import (
	"reflect"
	"strings"
	"testing"
)

const kernelsDoc = axesBase + `kernels: [host, debian-6.1]
matrix:
  - {name: legacy, reload: legacy}
  - {name: transfer, reload: socket-transfer, sysctls: {proxy: {net.ipv4.tcp_tw_reuse: "1"}}}
reference: legacy
expect:
  - {cell: transfer, better_than: legacy}
`

func TestKernelsCrossEveryCell(t *testing.T) {
	s := mustCheck(t, kernelsDoc)
	cells := Expand(s, false)
	want := []string{"legacy.host", "legacy.debian-6-1", "transfer.host", "transfer.debian-6-1"}
	if got := names(cells); !reflect.DeepEqual(got, want) {
		t.Fatalf("cells %v, want %v", got, want)
	}
	kernels := []string{"host", "debian-6.1", "host", "debian-6.1"}
	for i, c := range cells {
		if got := s.CellKernel(&c); got != kernels[i] {
			t.Errorf("%s: kernel %q, want %q", c.Name, got, kernels[i])
		}
		if c.Axes[KernelAxis] != KernelLevel(kernels[i]) {
			t.Errorf("%s: axes %v, want kernel %s", c.Name, c.Axes, KernelLevel(kernels[i]))
		}
	}
	if got := cells[3].Scenario.Hosts[1].Sysctls["net.ipv4.tcp_tw_reuse"]; got != "1" {
		t.Errorf("transfer.debian-6-1 lost its row's sysctl: tcp_tw_reuse %q", got)
	}
	if s.Reference != "legacy.host" {
		t.Errorf("reference %q, want legacy.host (the first kernel's)", s.Reference)
	}
	var claims []string
	for _, e := range s.Expect {
		claims = append(claims, e.Cell+" better_than "+e.BetterThan)
	}
	wantClaims := []string{"transfer.host better_than legacy.host", "transfer.debian-6-1 better_than legacy.debian-6-1"}
	if !reflect.DeepEqual(claims, wantClaims) {
		t.Errorf("claims %v, want %v (one per kernel, within it)", claims, wantClaims)
	}
	if got := s.GuestKernels(); !reflect.DeepEqual(got, []string{"debian-6.1"}) {
		t.Errorf("guest kernels %v", got)
	}
	axes := s.MatrixAxes()
	if len(axes) != 1 || axes[0].Name != KernelAxis || !reflect.DeepEqual(axes[0].Levels, []string{"host", "debian-6-1"}) {
		t.Errorf("matrix axes %+v, want kernel: host, debian-6-1", axes)
	}
	// A --set axis crosses the kernels' cells in turn; Validate after Parse does not cross them again.
	if err := AddAxis(s, Axis{Sysctl: &SysctlAxis{Host: "proxy", Name: "net.ipv4.tcp_fin_timeout",
		Values: []string{"30"}}}, "--set proxy:net.ipv4.tcp_fin_timeout=30"); err != nil {
		t.Fatal(err)
	}
	if err := Validate(s); err != nil {
		t.Fatal(err)
	}
	if got := names(Expand(s, false)); len(got) != 4 || got[1] != "legacy.debian-6-1.tcp_fin_timeout-30" {
		t.Errorf("after --set: cells %v", got)
	}
}

func TestKernelsBareScenario(t *testing.T) {
	s := mustCheck(t, axesBase+"kernels: [host, debian-6.12]\nexpect:\n  - {cell: default, failures: none}\n")
	if got := names(Expand(s, false)); !reflect.DeepEqual(got, []string{"host", "debian-6-12"}) {
		t.Fatalf("cells %v", got)
	}
	if s.Expect[0].Cell != "host" || s.Expect[1].Cell != "debian-6-12" {
		t.Errorf("claims %+v", s.Expect)
	}
}

func TestKernelsErrors(t *testing.T) {
	cases := []struct {
		name, tail string
		check      bool // the problem is Check's (the lab's kernels), not Parse's
		want       string
	}{
		{"unknown", "kernels: [host, debian-7]\n", true,
			`t.yaml:11: kernels[1]: unknown kernel "debian-7"; want one of host, debian-6.1, debian-6.12`},
		{"duplicate", "kernels:\n  - debian-6.1\n  - host\n  - debian-6.1\n", false,
			`t.yaml:14: kernels[2]: duplicate kernel "debian-6.1" (also kernels[0])`},
		{"empty", "kernels: []\n", false, `t.yaml:11: kernels: empty; name at least one kernel`},
		{"no-name", "kernels: [\"..\"]\n", false, `t.yaml:11: kernels[0]: ".." is not a kernel name`},
		{"axis-named-kernel", "kernels: [host]\naxes:\n  - {name: kernel, rate: [100, 200]}\n", false,
			`t.yaml:13: axes[0].name: the axis name "kernel" is the kernels'`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("t.yaml", []byte(axesBase+tc.tail))
			if tc.check {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				err = Check(s, testVocabulary())
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant a line starting %s", err, tc.want)
			}
		})
	}
}

func TestKernelLevel(t *testing.T) {
	for name, want := range map[string]string{"host": "host", "debian-6.1": "debian-6-1", "debian-6.12": "debian-6-12"} {
		if got := KernelLevel(name); got != want || !levelName.MatchString(got) {
			t.Errorf("KernelLevel(%s) = %s, want %s", name, got, want)
		}
	}
}
