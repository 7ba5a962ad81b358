// Package testutil holds helpers shared by the lab's tests.
package testutil

import (
	"os"
	"testing"
)

// RequireRoot skips a privileged test when the process is not root; with FAULTLAB_REQUIRE_PRIVILEGED=1
// (set in CI) it fails instead, so CI can never pass by skipping.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("FAULTLAB_REQUIRE_PRIVILEGED") == "1" {
		t.Fatal("privileged test: not root, and FAULTLAB_REQUIRE_PRIVILEGED=1 forbids skipping")
	}
	t.Skip("privileged test: not root (set FAULTLAB_REQUIRE_PRIVILEGED=1 to make this a failure)")
}

// SkipMissing skips a test whose tool or daemon binary is missing on this machine (reason says what and how to
// get it); with FAULTLAB_REQUIRE_PRIVILEGED=1 it fails instead: CI installs every tool (`make deps`), so a
// missing one there is a broken install, not a reason to pass.
func SkipMissing(t testing.TB, reason any) {
	t.Helper()
	if os.Getenv("FAULTLAB_REQUIRE_PRIVILEGED") == "1" {
		t.Fatalf("%v (FAULTLAB_REQUIRE_PRIVILEGED=1 forbids skipping)", reason)
	}
	t.Skip(reason)
}

// RequireVM is the nightly mode gate of the tests that boot the lab's guests (harness/vm): they run when
// FAULTLAB_VM=1 (make test-vm sets it, with FAULTLAB_REQUIRE_PRIVILEGED=1, so there a missing guest or
// qemu fails) and skip otherwise, saying what they would boot. It is a mode, not a missing install: the
// default run (CI's included) has no room for guests under emulation, so FAULTLAB_REQUIRE_PRIVILEGED alone
// does not turn it into a failure.
func RequireVM(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("FAULTLAB_VM") != "1" {
		t.Skip("nightly: FAULTLAB_VM=1 (make test-vm) boots " + what)
	}
}
