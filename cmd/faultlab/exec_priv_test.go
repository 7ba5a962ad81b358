package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/docker"
	"github.com/faultlab/faultlab/harness/docker/dockertest"
	"github.com/faultlab/faultlab/harness/netns"
	"github.com/faultlab/faultlab/harness/testutil"
)

// execHelperEnv makes the test binary act as `faultlab exec` (see TestMain), so the privileged test runs the
// real command without building the binary.
const execHelperEnv = "FAULTLAB_TEST_EXEC_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(execHelperEnv) == "1" {
		err := cmdExec(context.Background(), os.Args[1:]) // returns only on failure
		fmt.Fprintf(os.Stderr, "faultlab: %v\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// TestExecEntersHost builds a one-host lab on each backend, both with the same (unique) host name, and runs
// `faultlab exec` into each: with --run it enters that lab's host, without it the newest lab's (the docker
// one, built second), saying so on stderr. The command runs in the host's network namespace with this
// machine's filesystem.
func TestExecEntersHost(t *testing.T) {
	testutil.RequireRoot(t)
	dockertest.RequireDocker(t)
	dockertest.RequireImages(t, docker.ToolsImage)
	host := "ex" + randomHex(t, 2) // unique: no other lab on this machine has it
	topo := harness.Topology{Hosts: []harness.HostSpec{{Name: host}}}
	nsLab := buildTestLab(t, netns.New(), topo)
	time.Sleep(10 * time.Millisecond) // the docker lab is strictly newer
	dockerLab := buildTestLab(t, docker.New(docker.Options{}), topo)

	for _, tt := range []struct {
		name, run string
		want      *harness.Env
	}{
		{"netns", strings.TrimPrefix(nsLab.Prefix, harness.PrefixBase), nsLab},
		{"docker", dockerLab.Prefix, dockerLab},
		{"newest", "", dockerLab},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{host, "--", "readlink", "/proc/self/ns/net"}
			if tt.run != "" {
				args = append([]string{"--run", tt.run}, args...)
			}
			out, stderr := runExecHelper(t, args...)
			want, err := harness.NetnsIDOf(tt.want.Host(host).(harness.NetnsHost).NetnsPath())
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(out); got != want.String() {
				t.Errorf("exec ran in %s, want %s (the host's namespace)", got, want)
			}
			if stderr != "" {
				t.Logf("stderr: %s", stderr)
			}
			if tt.run == "" && !strings.Contains(stderr, "2 labs have host "+host+"; using the newest, "+
				dockerLab.Prefix) {
				t.Errorf("stderr %q does not say which lab was picked", stderr)
			}
		})
	}
	t.Run("missing_host", func(t *testing.T) {
		cmd := exec.Command(os.Args[0], "--run", nsLab.Prefix, "nohost", "--", "true")
		cmd.Env = append(os.Environ(), execHelperEnv+"=1")
		out, err := cmd.CombinedOutput()
		t.Logf("output: %s", out)
		if err == nil || !strings.Contains(string(out), `has no host "nohost": `+nsLab.Prefix+" (netns: "+host) {
			t.Errorf("err %v, output %q", err, out)
		}
	})
}

func buildTestLab(t *testing.T, p harness.Provider, topo harness.Topology) *harness.Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env, err := p.Build(ctx, harness.PrefixBase+"t"+randomHex(t, 4), topo, t.TempDir())
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Errorf("close %s lab: %v", p.Name(), err)
		}
	})
	if err != nil {
		t.Fatalf("build %s lab: %v", p.Name(), err)
	}
	return env
}

func runExecHelper(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), execHelperEnv+"=1")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("faultlab exec %s: %v\n%s", strings.Join(args, " "), err, e.String())
	}
	return o.String(), e.String()
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
