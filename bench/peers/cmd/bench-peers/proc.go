package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// usage is what a finished child used: its own CPU time and peak resident set (getrusage of the child).
type usage struct {
	Wall   time.Duration
	CPU    time.Duration
	MaxRSS int64 // KiB
}

// childResult is a finished child's output and usage.
type childResult struct {
	Stdout, Stderr []byte
	usage
}

// runIn runs argv inside the network namespace ns (`ip netns exec`, which execs argv in its own process, so
// the child's rusage is argv's) and waits for it. An empty ns runs argv here.
func runIn(ctx context.Context, ns string, argv ...string) (childResult, error) {
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// Interrupted, a child gets SIGINT (the peers and the Mininet script clean up on it), SIGKILL 10 s later.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	res := childResult{Stdout: out.Bytes(), Stderr: errb.Bytes(), usage: usage{Wall: time.Since(t0)}}
	if cmd.ProcessState != nil {
		res.usage = usageOf(cmd.ProcessState, res.Wall)
	}
	if err != nil {
		return res, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, clipOut(errb.Bytes()))
	}
	return res, nil
}

func usageOf(ps *os.ProcessState, wall time.Duration) usage {
	u := usage{Wall: wall, CPU: ps.UserTime() + ps.SystemTime()}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		u.MaxRSS = ru.Maxrss
	}
	return u
}

func clipOut(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return s
}

// selfCPU is the CPU time (user and system) this process has used.
func selfCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// self is this binary, which the children and pprof need.
func self() string {
	p, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	return p
}

// pprofTop summarises a CPU profile: `go tool pprof -top`, its first lines, also saved beside the profile.
func pprofTop(ctx context.Context, profile string) string {
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=15", self(), profile).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("go tool pprof: %v: %s", err, clipOut(out))
	}
	os.WriteFile(strings.TrimSuffix(profile, filepath.Ext(profile))+".top.txt", out, 0o644)
	return string(out)
}
