// Package dockertest holds helpers for tests that need a Docker engine and the lab's images.
package dockertest

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/docker"
	"github.com/faultlab/faultlab/harness/testutil"
)

// pingTimeout bounds the wait for the engine's answer.
const pingTimeout = 5 * time.Second

// RequireDocker skips a test when no Docker engine answers (no socket, connection refused, timeout): a
// machine without Docker cannot run it, whatever CI asks (FAULTLAB_REQUIRE_DOCKER=1 turns that skip into a
// failure too, for CI machines that must have an engine). When an engine exists the test is privileged:
// it skips when not root, and fails instead under FAULTLAB_REQUIRE_PRIVILEGED=1.
func RequireDocker(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	_, err := docker.Ping(ctx)
	if err != nil && !denied(err) {
		if os.Getenv("FAULTLAB_REQUIRE_DOCKER") == "1" {
			t.Fatalf("docker test: no Docker engine answers, and FAULTLAB_REQUIRE_DOCKER=1 forbids skipping: %v", err)
		}
		t.Skipf("docker test: no Docker engine answers: %v", err)
	}
	testutil.RequireRoot(t)
	if err != nil {
		t.Fatalf("docker test: %v", err)
	}
}

// denied reports whether err is a refused permission: then an engine exists (its socket is root's).
// The Docker client does not always wrap the errno, so its message is checked too.
func denied(err error) bool {
	return errors.Is(err, fs.ErrPermission) || strings.Contains(err.Error(), "permission denied")
}

// RequireImages checks that the lab images exist in the engine. A missing one fails the test under
// FAULTLAB_REQUIRE_PRIVILEGED=1 (CI builds them with `make images` before testing) and skips it otherwise,
// with the message naming the command that builds it.
func RequireImages(t testing.TB, images ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	err := docker.CheckImages(ctx, images...)
	switch {
	case err == nil:
	case !errors.Is(err, docker.ErrImageMissing):
		t.Fatal(err)
	case os.Getenv("FAULTLAB_REQUIRE_PRIVILEGED") == "1":
		t.Fatalf("%v (FAULTLAB_REQUIRE_PRIVILEGED=1 forbids skipping)", err)
	default:
		t.Skip(err)
	}
}
