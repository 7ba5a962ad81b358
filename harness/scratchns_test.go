package harness_test

import (
	"errors"
	"os"
	"testing"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/testutil"
)

// TestScratchNetns writes a sysctl in a scratch namespace with the lab's own code: the root namespace keeps
// its value, and after Close the namespace cannot be entered any more.
func TestScratchNetns(t *testing.T) {
	testutil.RequireRoot(t)
	ns, err := harness.NewScratchNetns()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	const name = "net.ipv4.tcp_fin_timeout"
	root := readRoot(t, name)
	want := "7"
	if root == want {
		want = "8"
	}
	got, err := harness.ApplySysctls(ns, map[string]string{name: want})
	if err != nil || got[name] != want {
		t.Fatalf("ApplySysctls = %v, %v", got, err)
	}
	if r := readRoot(t, name); r != root {
		t.Errorf("%s changed in the root namespace: %s -> %s", name, root, r)
	}
	path := ns.NetnsPath()
	ns.Close()
	ns.Close() // idempotent
	if err := harness.DoIn(path, func() error { return nil }); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("DoIn(%s) after Close = %v, want not found", path, err)
	}
	if _, err := ns.Start(t.Context(), harness.ProcSpec{Name: "x"}); !errors.Is(err, harness.ErrUnsupported) {
		t.Errorf("Start = %v, want ErrUnsupported", err)
	}
}
