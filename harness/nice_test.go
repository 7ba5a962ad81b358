package harness_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/testutil"
)

// procNice reads a task's nice value from field 19 of its stat file.
func procNice(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) may hold spaces; the fields after it start after its closing parenthesis.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	n, err := strconv.Atoi(f[16]) // field 19 of stat is the 17th after the name
	if err != nil {
		t.Fatalf("%s: nice field %q: %v", path, f[16], err)
	}
	return n
}

// TestStartLowered checks that a process started through StartLowered runs DaemonNice below the lab, and
// that no thread of the lab is left at the lower priority (restoring it needs root, hence the requirement).
func TestStartLowered(t *testing.T) {
	testutil.RequireRoot(t)
	lab, err := harness.Nice()
	if err != nil {
		t.Fatal(err)
	}
	for range 20 { // on whichever threads the runtime picks
		cmd := exec.Command("sleep", "5")
		if err := harness.StartLowered(cmd.Start); err != nil {
			t.Fatal(err)
		}
		got := procNice(t, "/proc/"+strconv.Itoa(cmd.Process.Pid)+"/stat")
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if got != lab+harness.DaemonNice {
			t.Fatalf("child's nice %d, want the lab's %d + %d", got, lab, harness.DaemonNice)
		}
	}
	tasks, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil || len(tasks) == 0 {
		t.Fatalf("list threads: %v (%d)", err, len(tasks))
	}
	for _, task := range tasks {
		if n := procNice(t, task); n != lab {
			t.Errorf("thread %s left at nice %d, the lab runs at %d", task, n, lab)
		}
	}
}
