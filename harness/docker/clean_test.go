package docker_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/docker"
	"github.com/faultlab/faultlab/harness/docker/dockertest"
)

// crashEnv makes TestCleanAfterCrash's subprocess the crashing lab: it builds a lab with the prefix it
// names in the directory crashDirEnv names, starts a process in a host, reports and waits to be killed.
const (
	crashEnv    = "FAULTLAB_DOCKER_CRASH_PREFIX"
	crashDirEnv = "FAULTLAB_DOCKER_CRASH_DIR"
)

// TestCleanAfterCrash kills a lab process (SIGKILL: no teardown runs) and checks that Clean removes its
// containers and the process it started in one, and nothing else.
func TestCleanAfterCrash(t *testing.T) {
	if prefix := os.Getenv(crashEnv); prefix != "" {
		crashingLab(prefix, os.Getenv(crashDirEnv))
		return
	}
	dockertest.RequireDocker(t)
	dockertest.RequireImages(t, docker.ToolsImage)
	prefix := newPrefix(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCleanAfterCrash$")
	cmd.Env = append(os.Environ(), crashEnv+"="+prefix, crashDirEnv+"="+t.TempDir())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = docker.CleanWith(context.Background(), docker.CleanOptions{Prefix: prefix}) })
	pid := 0
	for sc := bufio.NewScanner(out); sc.Scan(); {
		if s, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
			pid, _ = strconv.Atoi(s)
			break
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if pid == 0 {
		t.Fatal("the crashing lab did not report its process")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := docker.CleanWith(ctx, docker.CleanOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{prefix + "-a", prefix + "-router"}
	if !slices.Equal(rep.Containers, want) || !slices.Contains(rep.Processes, pid) || len(rep.Skipped) != 0 {
		t.Errorf("report %+v, want containers %v and process %d", rep, want, pid)
	}
	if st := procState(pid); st != "" && st != "Z" && st != "X" {
		t.Errorf("process %d still alive (state %s)", pid, st)
	}
	if left := labLeftovers(t, prefix); len(left) > 0 {
		t.Errorf("left after clean: %v", left)
	}
	if rep, err := docker.CleanWith(ctx, docker.CleanOptions{Prefix: prefix}); err != nil || len(rep.Containers) > 0 {
		t.Errorf("second clean: %+v, %v", rep, err)
	}
}

// procState is pid's state letter ("" when gone): a killed process whose parent died stays a zombie
// until init reaps it.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return ""
}

// crashingLab is the subprocess: it never returns (the test kills it).
func crashingLab(prefix, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topo := harness.Topology{Hosts: []harness.HostSpec{{Name: "a"}}}
	env, err := docker.New(docker.Options{}).Build(ctx, prefix, topo, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashing lab:", err)
		os.Exit(1)
	}
	p, err := env.Host("a").Start(ctx, harness.ProcSpec{Name: "sleeper", Argv: []string{"sleep", "1000"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashing lab:", err)
		os.Exit(1)
	}
	fmt.Printf("READY %d\n", p.PID)
	select {}
}

// TestCleanSkipsLiveRun checks that Clean leaves a run whose lab process (this one) lives.
func TestCleanSkipsLiveRun(t *testing.T) {
	dockertest.RequireDocker(t)
	dockertest.RequireImages(t, docker.ToolsImage)
	prefix := newPrefix(t)
	buildLab(t, prefix, nil, harness.Topology{Hosts: []harness.HostSpec{{Name: "a"}}})
	rep, err := docker.CleanWith(context.Background(), docker.CleanOptions{Prefix: prefix})
	if err != nil || len(rep.Containers) != 0 || !slices.Equal(rep.Skipped, []string{prefix}) {
		t.Fatalf("clean of a live run: %+v, %v; want it skipped", rep, err)
	}
}
