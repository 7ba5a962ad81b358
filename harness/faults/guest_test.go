package faults

import (
	"strings"
	"testing"

	"github.com/faultlab/faultlab/harness/testutil"
	"github.com/faultlab/faultlab/harness/vm"
)

// TestSynHoldInGuest runs TestSynHold in the lab's guest (harness/vm: Debian's own 6.1 kernel under qemu),
// whose kernel has the plug qdisc this machine's lacks (on a kernel that has it, TestSynHold/plug holds
// with it here too, and the guest repeats it on another kernel), with FAULTLAB_REQUIRE_PLUG=1: the plug engine of
// the syn-hold mitigation (impair.PlugGate: ingress redirect of the port's SYNs to an ifb whose root is a
// plug) is then built, held and released by a real kernel, and chosen by auto. Nightly (make test-vm), as
// TestNetemInGuest: the default run has no room for a guest.
func TestSynHoldInGuest(t *testing.T) {
	testutil.RequireVM(t, "a guest kernel under emulation")
	out := testutil.InGuest(t, "bookworm", vm.GoTest{Run: "^(TestSynHold|TestSynHoldInherited)$",
		Env: []string{"FAULTLAB_REQUIRE_PLUG=1"}}, "TestSynHold/plug", "TestSynHold/auto", "TestSynHold/nfqueue")
	if !strings.Contains(out, "Engine:plug") {
		t.Error("no hold in the guest ran on the plug engine")
	}
}
