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
