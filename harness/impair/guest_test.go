package impair_test

import (
	"testing"

	"github.com/faultlab/faultlab/harness/impair"
	"github.com/faultlab/faultlab/harness/testutil"
	"github.com/faultlab/faultlab/harness/vm"
)

// guestTests are the netem engine's tests run in the guest: what the kernel accepts (TestNetemEngine: the
// qdiscs tc reads back, the delay added), what netem drops (TestNetemLoss), and Detect.
const guestTests = "^(TestNetemEngine|TestNetemLoss|TestDetect)$"

// TestNetemInGuest runs the netem engine's tests inside the lab's guest (harness/vm: Debian's own kernel under
// qemu, images/vm.sh), where sch_netem exists, when this machine's kernel lacks it. So the netem path, the one
// most users' kernels take, is tested on every run here: a broken netlink encoding fails it. In the guest
// FAULTLAB_REQUIRE_NETEM=1 turns a kernel without netem into a failure, and FAULTLAB_EMULATED=1 widens the
// delay bound for the emulator's late timers (emulationSlack). Nightly, with the image build (make test-vm):
// the default run's budget has no room for the guest's few minutes.
func TestNetemInGuest(t *testing.T) {
	testutil.RequireVM(t, "a guest kernel under emulation")
	testutil.RequireRoot(t)
	l := newLab(t)
	av, err := impair.Detect(l.env.Router)
	if err != nil {
		t.Fatal(err)
	}
	if av.Has(impair.EngineNetem) {
		t.Skipf("kernel %s has netem: TestNetemEngine and TestNetemLoss test it here, no guest needed", av.Kernel)
	}
	testutil.InGuest(t, "bookworm", vm.GoTest{Run: guestTests, Env: []string{"FAULTLAB_REQUIRE_NETEM=1"}},
		"TestNetemEngine", "TestNetemLoss")
}
