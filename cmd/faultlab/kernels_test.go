package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunKernelsMissingImage: a scenario naming a kernel whose guest is not built fails before any work,
// with the command that builds it, and writes nothing.
func TestRunKernelsMissingImage(t *testing.T) {
	t.Setenv("FAULTLAB_VM_DIR", "")
	src, err := os.ReadFile("../../scenarios/exhaustion-kernels.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "k.yaml"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir) // the guests' images are looked for under the working directory's images/out/vm
	out := filepath.Join(dir, "runs")
	err = cmdRun(context.Background(), []string{"-q", "--out", out, "k.yaml"})
	for _, want := range []string{"kernel debian-6.1:", "`make vm-image VM_SUITE=bookworm`", "kernel debian-6.12:",
		"`make vm-image VM_SUITE=trixie`"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to say %s", err, want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s exists (%v): the run started before refusing", out, err)
	}
}

// TestRunKernelsBadFlags: what a run under several kernels cannot do is refused before any work.
func TestRunKernelsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--shard", "1/2"}, "already split, one part per kernel"},
		{[]string{"--until-decided"}, "cannot run under several kernels"},
		{[]string{"--backend", "docker"}, "the guests run the netns backend only"},
		{[]string{"--kernel", "debian-7"}, "not one of the scenario's kernels (host, debian-6.1, debian-6.12)"},
	} {
		args := append([]string{"-q", "--out", t.TempDir(), "../../scenarios/exhaustion-kernels.yaml"}, tc.flags...)
		if err := cmdRun(context.Background(), args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.flags, err, tc.want)
		}
	}
}
