package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// GoTest is one run of a Go package's tests in the guest.
type GoTest struct {
	// Dir is the package's directory on this machine (go test -c runs there).
	Dir string
	// Run is the -test.run pattern; Env are the guest-side environment's additions (NAME=value).
	Run string
	Env []string
	// Timeout bounds the tests in the guest (-test.timeout); the guest gets a minute more to boot and stop.
	Timeout time.Duration
}

// RunGoTest builds the package's test binary (static, go test -c) into share and runs it in the guest with
// FAULTLAB_REQUIRE_PRIVILEGED=1 and FAULTLAB_EMULATED=1 (the guest runs under emulation) added to t.Env.
func (im *Image) RunGoTest(ctx context.Context, share string, t GoTest) (*Result, error) {
	if t.Timeout == 0 {
		t.Timeout = 4 * time.Minute
	}
	build := exec.CommandContext(ctx, "go", "test", "-c", "-o", filepath.Join(share, "pkg.test"), ".")
	build.Dir = t.Dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go test -c in %s: %v\n%s", t.Dir, err, out)
	}
	env := append([]string{"FAULTLAB_REQUIRE_PRIVILEGED=1", "FAULTLAB_EMULATED=1"}, t.Env...)
	script := "export " + strings.Join(env, " ") + "\n" +
		"./pkg.test -test.run '" + t.Run + "' -test.v -test.count=1 -test.timeout " + t.Timeout.String() + "\n"
	return im.Run(ctx, share, script, Options{Timeout: t.Timeout + time.Minute})
}

// Unpassed lists what a guest's test output shows wrong: each of names that did not pass (a test that
// skipped in the guest has not checked what the guest is for), and any test that skipped.
func Unpassed(out string, names ...string) []string {
	var bad []string
	for _, name := range names {
		if !regexp.MustCompile(`(?m)^\s*--- PASS: ` + regexp.QuoteMeta(name) + ` `).MatchString(out) {
			bad = append(bad, name+" did not pass in the guest")
		}
	}
	if strings.Contains(out, "--- SKIP") {
		bad = append(bad, "a test skipped in the guest")
	}
	return bad
}

// ModuleRoot is the directory of the go.mod of the working directory's module (go env GOMOD): where a
// test finds the guests under images/out/vm.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}
