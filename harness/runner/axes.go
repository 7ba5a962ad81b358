package runner

import (
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/results"
)

// axesMeta lists the scenario's axes and the levels of the cells that run, for run.json.
func axesMeta(s *spec.Scenario, cells []spec.Cell) ([]results.AxisMeta, map[string]map[string]string) {
	var axes []results.AxisMeta
	for _, a := range s.MatrixAxes() {
		axes = append(axes, results.AxisMeta{Name: a.Name, Levels: a.Levels})
	}
	if len(axes) == 0 {
		return nil, nil
	}
	levels := map[string]map[string]string{}
	for _, c := range cells {
		if c.Axes != nil {
			levels[c.Name] = c.Axes
		}
	}
	return axes, levels
}
