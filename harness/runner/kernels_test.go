package runner

import (
	"strings"
	"testing"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/harness/vm"
)

// TestCheckKernel: a scenario with kernels runs one kernel's part at a time, a guest's only on that kernel.
func TestCheckKernel(t *testing.T) {
	s, err := spec.Load("../../scenarios/exhaustion-kernels.yaml")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := spec.Load("../../scenarios/shard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	release := harness.KernelRelease()
	var guest string // the message on this machine for a guest's part
	if !vm.Kernels["debian-6.1"].Runs(release) {
		guest = "this machine runs kernel " + release + ", not 6.1"
	}
	cases := []struct {
		s    *spec.Scenario
		opts Options
		want string // "" for no error
	}{
		{plain, Options{}, ""},
		{plain, Options{Kernel: "host"}, "names no kernels"},
		{s, Options{}, "`faultlab run` runs each kernel's part"},
		{s, Options{Kernel: "host"}, ""},
		{s, Options{Kernel: "debian-7"}, "not one of the scenario's kernels (host, debian-6.1, debian-6.12)"},
		{s, Options{Kernel: "host", Shard: &Shard{1, 2}}, "--shard cannot split"},
		{s, Options{Kernel: "host", UntilDecided: true}, "--until-decided cannot run"},
		{s, Options{Kernel: "debian-6.1"}, guest},
	}
	for _, tc := range cases {
		err := checkKernel(tc.s, tc.opts)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s %+v: error %v, want %q", tc.s.Name, tc.opts, err, tc.want)
		}
	}
	cells := kernelCells(s, spec.Expand(s, false), "debian-6.1")
	if len(cells) != 5 || cells[0].Name != "default.debian-6-1" {
		t.Errorf("debian-6.1's cells: %d, first %s", len(cells), cells[0].Name)
	}
}
