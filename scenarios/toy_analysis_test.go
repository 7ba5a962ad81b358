package scenarios

import (
	"fmt"
	"path/filepath"

	"github.com/faultlab/faultlab/results"
	"github.com/faultlab/faultlab/results/analyses"
)

// localPorts is a toy analysis, written the way a new analysis is added: one file with its value and its
// typed result. It reads the cell's records from the run directory and counts distinct client ports.
var localPorts = &analyses.Analyzer{
	Name: "local_ports",
	Doc:  "distinct client source ports among the attempts",
	Run: func(in *analyses.Input) (analyses.Output, error) {
		seen := map[int]bool{}
		n := 0
		err := results.ReadRecords(filepath.Join(in.Dir, "records.jsonl"), func(r *results.Record) error {
			n++
			if r.LocalPort != 0 {
				seen[r.LocalPort] = true
			}
			return nil
		})
		res := localPortsResult{Attempts: n, Ports: len(seen)}
		return analyses.Output{Value: res, Summary: fmt.Sprintf("%d ports over %d attempts", res.Ports, n),
			Columns: []results.Column{{Name: "distinct ports", Value: fmt.Sprint(res.Ports)}}}, err
	},
}

type localPortsResult struct {
	Attempts int `json:"attempts"`
	Ports    int `json:"ports"`
}
