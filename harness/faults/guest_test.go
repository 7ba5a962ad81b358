package faults

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/impair"
	"github.com/faultlab/faultlab/harness/testutil"
	"github.com/faultlab/faultlab/harness/vm"
)

// TestSynHoldInGuest runs TestSynHold in the lab's guest (harness/vm: Debian's own 6.1 kernel under qemu),
// whose kernel has the plug qdisc this machine's lacks, with FAULTLAB_REQUIRE_PLUG=1: the plug engine of
// the syn-hold mitigation (impair.PlugGate: ingress redirect of the port's SYNs to an ifb whose root is a
// plug) is then built, held and released by a real kernel, and chosen by auto. Nightly (make test-vm), as
// TestNetemInGuest: the default run has no room for a guest.
func TestSynHoldInGuest(t *testing.T) {
	if os.Getenv("FAULTLAB_VM") != "1" {
		t.Skip("nightly: FAULTLAB_VM=1 (make test-vm) boots a guest kernel under emulation")
	}
	lab := newLab(t)
	if err := impair.DetectPlug(lab.proxy); err == nil {
		t.Skip("this kernel has the plug qdisc: TestSynHold/plug tests it here, no guest needed")
	}
	root, err := vm.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	im, err := vm.Open(vm.DefaultDir(root, "bookworm"))
	if err != nil {
		testutil.SkipMissing(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	res, err := im.RunGoTest(ctx, t.TempDir(), vm.GoTest{Dir: ".", Run: "^(TestSynHold|TestSynHoldInherited)$",
		Env: []string{"FAULTLAB_REQUIRE_PLUG=1"}})
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.Output)
	t.Logf("guest kernel %s (%s), boot to power-off %s:\n%s", im.Kernel, im.Package, res.Elapsed.Round(time.Millisecond), out)
	if res.ExitCode != 0 {
		t.Errorf("the syn-hold tests failed in the guest (kernel %s, exit %d)", im.Kernel, res.ExitCode)
	}
	for _, bad := range vm.Unpassed(out, "TestSynHold/plug", "TestSynHold/auto", "TestSynHold/nfqueue") {
		t.Error(bad)
	}
	if !strings.Contains(out, "Engine:plug") {
		t.Error("no hold in the guest ran on the plug engine")
	}
}
