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
