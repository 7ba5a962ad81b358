package scenarios

import (
	"path/filepath"
	"testing"

	"github.com/faultlab/faultlab/loadgen"
	"github.com/faultlab/faultlab/results"
	"github.com/faultlab/faultlab/results/analyses"
)

// TestExtend shows what adding a workload and an analysis takes: one file each (toy_workload_test.go,
// toy_analysis_test.go) and one registration line each, below (in the lab's own code, that line is an entry of
// loadgen.Workloads or analyses.Registry). The scenario file names them like the built-in ones, and the
// analysis's typed result reaches results.json through the run directory.
func TestExtend(t *testing.T) {
	loadgen.Workloads[connectOnlyEntry.Kind] = connectOnlyEntry // the workload's registration line
	analyses.Registry[localPorts.Name] = localPorts             // the analysis's registration line
	t.Cleanup(func() {
		delete(loadgen.Workloads, connectOnlyEntry.Kind)
		delete(analyses.Registry, localPorts.Name)
	})
	rep := runScenario(t, filepath.Join("testdata", "extend.yaml"), backend())
	if rep == nil || t.Failed() {
		return
	}
	// Read back from results.json, not from memory: the run directory is the contract.
	r, err := results.ReadReport(filepath.Join(rep.Env["run_dir"].(string), "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := r.Cell("default")
	var got localPortsResult
	if err := c.Analysis("local_ports", 0, &got); err != nil {
		t.Fatal(err)
	}
	t.Logf("local_ports: %+v; attempts %d", got, c.Stats.Attempts)
	if got.Attempts != c.Stats.Attempts || got.Ports < got.Attempts*9/10 {
		t.Errorf("local_ports %+v over %d attempts: want every attempt, nearly all on distinct ports", got,
			c.Stats.Attempts)
	}
}
