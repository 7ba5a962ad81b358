// Package scenarios holds the lab's scenario files and their `go test` entry points:
//
//	go test ./scenarios -run Reload            the quick matrix
//	go test ./scenarios -run 'Reload/legacy'   one cell
//	FAULTLAB_LONG=1 go test ./scenarios -run Reload -timeout 2h   the nightly matrix
package scenarios

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/netns"
)

// TestMain checks that the whole suite leaves the root namespace as it found it (sysctls, nftables ruleset,
// qdiscs, links) and leaves no lab namespace behind: the lab's promise that everything it changes lives in
// its own namespaces, and that teardown is complete.
func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Exit(m.Run()) // the privileged tests skip (or fail under FAULTLAB_REQUIRE_PRIVILEGED=1) on their own
	}
	nsBefore := labNamespaces()
	before, err := harness.SnapshotRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "snapshot root namespace:", err)
		os.Exit(1)
	}
	code := m.Run()
	live := liveNamespaces()
	after, err := harness.SnapshotRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "snapshot root namespace:", err)
		os.Exit(1)
	}
	if d := harness.Diff(before, after); len(d) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the root namespace changed during the tests:\n  %s\n", strings.Join(d, "\n  "))
		code = 1
	}
	var left []string
	for ns := range labNamespaces() {
		// another process's runs are not ours: those present before (a `faultlab up` beside the tests) and
		// those whose lab process still holds their lock (a `faultlab run` started meanwhile)
		if !nsBefore[ns] && !live[ns] {
			left = append(left, ns)
		}
	}
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: lab namespaces left behind: %v\n", left)
		code = 1
	}
	os.Exit(code)
}

// liveNamespaces are the namespaces of runs a living lab process holds (by their run lock).
func liveNamespaces() map[string]bool {
	runs, err := netns.List()
	if err != nil {
		fmt.Fprintln(os.Stderr, "list lab namespaces:", err)
	}
	m := map[string]bool{}
	for _, r := range runs {
		for _, n := range r.Namespaces {
			if r.Live {
				m["/var/run/netns/"+n] = true
			}
		}
	}
	return m
}

func labNamespaces() map[string]bool {
	paths, _ := filepath.Glob("/var/run/netns/" + harness.PrefixBase + "*")
	m := map[string]bool{}
	for _, p := range paths {
		m[p] = true
	}
	return m
}
