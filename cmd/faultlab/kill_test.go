package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/testutil"
)

// TestKillThenClean runs `faultlab up` on the Reload scenario, SIGKILLs it once the lab is up (so none of its
// own cleanup runs), and checks that `faultlab clean` removes every namespace and process the lab left, and
// that the root namespace's sysctls, nftables ruleset, qdiscs and links are as they were before.
func TestKillThenClean(t *testing.T) {
	testutil.RequireRoot(t)
	before, err := harness.SnapshotRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "faultlab")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	up := exec.Command(bin, "up", "--out", t.TempDir(), "--cells", "legacy", "../../scenarios/reload.yaml")
	stdout, _ := up.StdoutPipe()
	up.Stderr = os.Stderr
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	id := waitUp(t, stdout)
	nsPaths, _ := filepath.Glob("/var/run/netns/" + harness.PrefixBase + id + "-*")
	if len(nsPaths) < 4 {
		t.Fatalf("want 4 namespaces (router + 3 hosts) of run %s, got %v", id, nsPaths)
	}
	pids := pidsIn(t, nsPaths)
	if len(pids) < 2 {
		t.Fatalf("want haproxy and nginx processes inside the lab, got %v", pids)
	}
	_ = up.Process.Signal(syscall.SIGKILL)
	_ = up.Wait()
	if left, _ := filepath.Glob("/var/run/netns/" + harness.PrefixBase + id + "-*"); len(left) == 0 {
		t.Fatal("SIGKILL left nothing behind: the test proves nothing")
	}
	if out, err := exec.Command(bin, "clean").CombinedOutput(); err != nil {
		t.Fatalf("faultlab clean: %v\n%s", err, out)
	}
	if left, _ := filepath.Glob("/var/run/netns/" + harness.PrefixBase + id + "-*"); len(left) > 0 {
		t.Errorf("namespaces left after clean: %v", left)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d (inside the lab) still alive after clean", pid)
		}
	}
	after, err := harness.SnapshotRoot()
	if err != nil {
		t.Fatal(err)
	}
	if d := harness.Diff(before, after); len(d) > 0 {
		t.Errorf("root namespace changed:\n%s", strings.Join(d, "\n"))
	}
}

// alive reports whether pid runs: a killed process whose parent (the killed `faultlab up`) is gone waits as
// a zombie until init reaps it, and a zombie is not alive.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// waitUp reads `faultlab up` output until the lab is up and returns the run id.
func waitUp(t *testing.T, r interface{ Read([]byte) (int, error) }) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("faultlab up exited before the lab was up")
			}
			if f := strings.Fields(l); len(f) > 2 && f[0] == "lab" && f[2] == "up" {
				go func() {
					for range lines {
					}
				}()
				return f[1]
			}
		case <-ctx.Done():
			t.Fatal("faultlab up: no 'lab ID up' line within 60s")
		}
	}
}

// pidsIn lists the processes whose network namespace is one of nsPaths.
func pidsIn(t *testing.T, nsPaths []string) []int {
	t.Helper()
	inodes := map[uint64]bool{}
	for _, p := range nsPaths {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err == nil {
			inodes[st.Ino] = true
		}
	}
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+d.Name()+"/ns/net", &st) == nil && inodes[st.Ino] {
			pids = append(pids, pid)
		}
	}
	return pids
}
