package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/faultlab/faultlab/results"
)

// fixtures of results/regress_test.go: a baseline of two Reload cells and reruns of it
var compareData = filepath.Join("..", "..", "results", "testdata", "compare")

// TestBaselineCompareCLI saves a baseline from a recorded results.json with `baseline save`, then compares
// reruns with it as `faultlab compare` does: exit 0 for an identical rerun, 1 with the worse cell named for a
// doubling of legacy's bad reloads, 2 for another scenario; --junit writes one test case per cell and metric.
func TestBaselineCompareCLI(t *testing.T) {
	tmp := t.TempDir()
	base := filepath.Join(tmp, "baselines", "recorded.json")
	to, dir, err := parseBaselineArgs([]string{"save", filepath.Join(compareData, "baseline-run"), "--to", base},
		io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := saveBaseline(dir, to, io.Discard); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(tmp, "other.json")
	r, err := results.ReadRunReport(filepath.Join(compareData, "rerun"))
	if err != nil {
		t.Fatal(err)
	}
	r.Scenario = "exhaustion"
	if err := r.WriteJSON(other); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		run      string
		code     int
		contains string
	}{
		{filepath.Join(compareData, "rerun"), 0, ""},
		{filepath.Join(compareData, "double"), 1, "legacy: bad windows: bad windows 60/600 in the baseline, " +
			"120/600 in the run"},
		{filepath.Join(compareData, "broken"), 1, "socket-transfer: bad windows"},
		{other, 2, `the baseline is of scenario "recorded", the run of "exhaustion"`},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.run), func(t *testing.T) {
			junit := filepath.Join(tmp, filepath.Base(c.run)+".xml")
			a, err := parseCompareArgs([]string{base, c.run, "--junit", junit}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			err = compare(a, io.Discard)
			code := 0
			var ce *compareError
			if errors.As(err, &ce) {
				code = ce.code
			} else if err != nil {
				t.Fatal(err)
			}
			if code != c.code || (c.contains != "" && !strings.Contains(err.Error(), c.contains)) {
				t.Errorf("exit %d (%v), want %d with %q", code, err, c.code, c.contains)
			}
			if c.code == 2 {
				return
			}
			x, err := os.ReadFile(junit)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(x), "<testcase "); n != 4 {
				t.Errorf("%d test cases in the JUnit XML, want 4 (2 cells x 2 metrics)", n)
			}
		})
	}
}
