package impair_test

import (
	"context"
	"os"
	"testing"
	"time"

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
	if os.Getenv("FAULTLAB_VM") != "1" {
		t.Skip("nightly: FAULTLAB_VM=1 (make test-vm) boots a guest kernel under emulation")
	}
	testutil.RequireRoot(t)
	l := newLab(t)
	av, err := impair.Detect(l.env.Router)
	if err != nil {
		t.Fatal(err)
	}
	if av.Has(impair.EngineNetem) {
		t.Skipf("kernel %s has netem: TestNetemEngine and TestNetemLoss test it here, no guest needed", av.Kernel)
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
	res, err := im.RunGoTest(ctx, t.TempDir(), vm.GoTest{Dir: ".", Run: guestTests,
		Env: []string{"FAULTLAB_REQUIRE_NETEM=1"}})
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.Output)
	t.Logf("guest kernel %s (%s), boot to power-off %s:\n%s", im.Kernel, im.Package, res.Elapsed.Round(time.Millisecond), out)
	if res.ExitCode != 0 {
		t.Errorf("the netem engine's tests failed in the guest (kernel %s, exit %d)", im.Kernel, res.ExitCode)
	}
	for _, bad := range vm.Unpassed(out, "TestNetemEngine", "TestNetemLoss") {
		t.Error(bad)
	}
}
