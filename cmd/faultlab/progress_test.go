package main

import (
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/runner"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/loadgen"
)

// TestProgressLine checks what a long run's live line says: the cell's block of the run, its round, the load
// time so far of the planned total, and the run's attempts and failures so far (ended blocks plus the
// running one).
func TestProgressLine(t *testing.T) {
	var cells []spec.Cell
	for rep := range 3 {
		for _, name := range []string{"legacy", "socket-transfer"} {
			c := spec.Cell{Name: name, Rep: rep}
			c.Scenario.Workload.Duration = 30 * time.Second
			cells = append(cells, c)
		}
	}
	pr := &progress{on: true, plan: planOf(cells)} // off a terminal: no bars
	pr.finish(cells[0], &runner.CellResult{Load: loadgen.Summary{Launched: 90000, Failed: 120}}, nil)
	pr.update(runner.Progress{Cell: "socket-transfer", Elapsed: 12 * time.Second, Duration: 30 * time.Second,
		Load: loadgen.StatsSnapshot{Launched: 36000, Failed: 3}})
	got := pr.line(cells[1])
	for _, want := range []string{"[2/6, round 1/3, 42s/3m0s]", "36000 attempts, 3 failed",
		"run: 126000 attempts, 123 failed"} {
		if !strings.Contains(got, want) {
			t.Errorf("line %q lacks %q", got, want)
		}
	}
}
