package netns

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/faultlab/faultlab/harness"
)

func TestGroupRuns(t *testing.T) {
	names := []string{"fl-a-backend", "fl-a-b-router", "fl-a-b-x", "fl-a-client", "fl-a-router", "fl-svcx",
		"fl-zz-client", "fl-zz-proxy"}
	want := []Run{
		{Prefix: "fl-a", Namespaces: []string{"fl-a-backend", "fl-a-client", "fl-a-router"}},
		{Prefix: "fl-a-b", Namespaces: []string{"fl-a-b-router", "fl-a-b-x"}},
		{Prefix: "fl-svcx", Namespaces: []string{"fl-svcx"}},
		{Prefix: "fl-zz", Namespaces: []string{"fl-zz-client", "fl-zz-proxy"}}, // router gone: an orphan run
	}
	if got := groupRuns(names); !reflect.DeepEqual(got, want) {
		t.Errorf("groupRuns:\n got %+v\nwant %+v", got, want)
	}
	if got := groupRuns(nil); len(got) != 0 {
		t.Errorf("groupRuns(nil) = %+v", got)
	}
}

// TestRunLock: a run is live from the moment its lock file is taken, before any namespace exists (a Clean
// racing a run being built leaves it alone); once its cleanup ran, or once the process holding the lock is
// gone, the lock file is stale and sweepLocks removes it.
func TestRunLock(t *testing.T) {
	old := LockDir
	LockDir = t.TempDir()
	t.Cleanup(func() { LockDir = old })

	const prefix = "fl-locktest"
	c := &harness.Cleanup{}
	if err := lockRun(c, prefix); err != nil {
		t.Fatal(err)
	}
	if !runLive(prefix) {
		t.Error("a run holding its lock file (no namespace yet) is not live")
	}
	if err := lockRun(&harness.Cleanup{}, prefix); err == nil {
		t.Error("a second run with the same prefix took the lock")
	}
	if got, err := sweepLocks(""); err != nil || len(got) != 0 {
		t.Errorf("sweepLocks removed a live run's lock: %v %v", got, err)
	}
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	if runLive(prefix) {
		t.Error("live after its cleanup ran")
	}
	if _, err := os.Stat(filepath.Join(LockDir, prefix+".lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left by the run's cleanup: %v", err)
	}

	// A lock file whose process died (no flock held), one of another run, and a stranger's file.
	for _, name := range []string{"fl-dead.lock", "fl-other.lock", "notours.lock"} {
		if err := os.WriteFile(filepath.Join(LockDir, name), nil, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := sweepLocks("fl-dead"); err != nil || !reflect.DeepEqual(got, []string{"fl-dead"}) {
		t.Errorf("sweepLocks(fl-dead) = %v %v", got, err)
	}
	if got, err := sweepLocks(""); err != nil || !reflect.DeepEqual(got, []string{"fl-other"}) {
		t.Errorf("sweepLocks() = %v %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(LockDir, "notours.lock")); err != nil {
		t.Errorf("sweepLocks touched a file that is not a lab lock: %v", err)
	}
}
