package netns_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/netns"
	"github.com/faultlab/faultlab/harness/testutil"
)

const helperEnv = "FAULTLAB_NETNS_CRASH_HELPER"

// TestCrashHelper is not a test: run by TestCleanAfterCrash as a child, it builds a lab, starts a process in
// it, says "ready" and waits to be killed.
func TestCrashHelper(t *testing.T) {
	prefix := os.Getenv(helperEnv)
	if prefix == "" {
		t.Skip("helper process for TestCleanAfterCrash")
	}
	env, err := netns.New().Build(context.Background(), prefix, topo3, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, err := env.Host("backend").Start(context.Background(),
		harness.ProcSpec{Name: "orphan", Argv: []string{"sleep", "300"}})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ready %d\n", p.PID)
	select {}
}

// TestCleanAfterCrash builds a lab in a child process, SIGKILLs the child (a crash: no teardown runs) and
// checks that Clean finds and removes everything, and that a second Clean finds nothing.
func TestCleanAfterCrash(t *testing.T) {
	testutil.RequireRoot(t)
	prefix := newPrefix(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+prefix)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	orphan := waitReady(t, out)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	go io.Copy(io.Discard, out)

	run := findRun(t, prefix)
	if run == nil || run.Live || len(run.Namespaces) != 4 {
		t.Fatalf("List after crash: %+v", run)
	}
	if !alive(orphan) {
		t.Fatalf("orphan %d not running after the crash", orphan)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := netns.CleanWith(ctx, netns.CleanOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Namespaces) != 4 || !slices.Contains(rep.Processes, orphan) ||
		!slices.Equal(rep.Locks, []string{prefix}) {
		t.Errorf("report: %+v (orphan %d)", rep, orphan)
	}
	if _, err := os.Stat(filepath.Join(netns.LockDir, prefix+".lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run lock file left after Clean: %v", err)
	}
	if alive(orphan) {
		t.Errorf("orphan %d survived Clean", orphan)
	}
	if got := withPrefix(ipNetnsList(t), prefix); len(got) != 0 {
		t.Errorf("namespaces left after Clean: %v", got)
	}
	rep, err = netns.CleanWith(ctx, netns.CleanOptions{Prefix: prefix})
	if err != nil || len(rep.Namespaces)+len(rep.Processes)+len(rep.Skipped)+len(rep.Locks) != 0 {
		t.Errorf("second Clean: %+v %v", rep, err)
	}
}

func waitReady(t *testing.T, r io.Reader) int {
	t.Helper()
	type res struct {
		pid int
		err error
	}
	ch := make(chan res, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				pid, err := strconv.Atoi(s)
				ch <- res{pid, err}
				return
			}
		}
		ch <- res{0, errors.New("helper exited before ready")}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.pid
	case <-time.After(30 * time.Second):
		t.Fatal("helper not ready after 30s")
	}
	return 0
}

func findRun(t *testing.T, prefix string) *netns.Run {
	t.Helper()
	runs, err := netns.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.Prefix == prefix {
			return &r
		}
	}
	return nil
}

// TestCleanSkipsLiveRun: Clean leaves a run whose lab process is alive alone.
func TestCleanSkipsLiveRun(t *testing.T) {
	env := build(t, topo3)
	run := findRun(t, env.Prefix)
	if run == nil || !run.Live {
		t.Fatalf("List: %+v", run)
	}
	rep, err := netns.CleanWith(context.Background(), netns.CleanOptions{Prefix: env.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Skipped, []string{env.Prefix}) || len(rep.Namespaces) != 0 {
		t.Errorf("report: %+v", rep)
	}
	if got := withPrefix(ipNetnsList(t), env.Prefix); len(got) != 4 {
		t.Errorf("namespaces after Clean of a live run: %v", got)
	}
}
