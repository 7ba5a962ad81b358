package testutil

import (
	"context"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/vm"
)

// InGuest runs the current package's tests matching gt.Run (gt.Dir defaults to the package's directory) in
// the lab's guest of suite (harness/vm, built by make vm-image), logs the guest's output and fails t unless
// the guest's tests exited 0, each of pass passed there and none skipped (a test that skipped in the guest
// has not checked what the guest is for). A missing guest or qemu skips, and fails under
// FAULTLAB_REQUIRE_PRIVILEGED=1 (SkipMissing). It returns the guest's output.
func InGuest(t testing.TB, suite string, gt vm.GoTest, pass ...string) string {
	t.Helper()
	root, err := vm.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	im, err := vm.Open(vm.DefaultDir(root, suite))
	if err != nil {
		SkipMissing(t, err)
	}
	if gt.Dir == "" {
		gt.Dir = "."
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	res, err := im.RunGoTest(ctx, t.TempDir(), gt)
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.Output)
	t.Logf("guest kernel %s (%s), boot to power-off %s:\n%s", im.Kernel, im.Package, res.Elapsed.Round(time.Millisecond), out)
	if res.ExitCode != 0 {
		t.Errorf("the tests failed in the guest (kernel %s, exit %d)", im.Kernel, res.ExitCode)
	}
	for _, bad := range vm.Unpassed(out, pass...) {
		t.Error(bad)
	}
	return out
}
