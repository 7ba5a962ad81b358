package results

import (
	"reflect"
	"testing"
)

// TestCompareAlongAxes: on a 2x2 product less one cell, each cell is compared with its neighbour at the
// axis's first level, every other axis alike; a cell whose neighbour is missing is left out.
func TestCompareAlongAxes(t *testing.T) {
	axes := []AxisMeta{{Name: "s", Levels: []string{"a", "b"}}, {Name: "r", Levels: []string{"r1", "r2"}}}
	cell := func(s, r string, bad int) CellReport {
		name := s + "." + r
		return CellReport{Name: name, Axes: map[string]string{"s": s, "r": r},
			Stats: &CellStats{Cell: name, Windows: 10, BadWindows: bad, Attempts: 1000, Failures: 3 * bad}}
	}
	cells := []CellReport{cell("a", "r1", 5), cell("a", "r2", 9), cell("b", "r1", 0),
		{Name: "baseline", Stats: &CellStats{Cell: "baseline"}}} // b.r2 excluded; baseline not from axes
	var got [][3]string
	for _, c := range CompareAlongAxes(axes, cells) {
		got = append(got, [3]string{c.Axis, c.A, c.B})
		if c.A == "b.r1" && (c.ABad != 0 || c.BBad != 5 || c.AFailures != 0 || c.BFailures != 15 || c.PValue >= 0.05) {
			t.Errorf("b.r1 against a.r1: %+v", c)
		}
	}
	want := [][3]string{{"s", "b.r1", "a.r1"}, {"r", "a.r2", "a.r1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("comparisons %v, want %v", got, want)
	}
}
