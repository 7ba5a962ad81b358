package results

import (
	"math"
	"testing"
)

// TestMannWhitney: U and p against the definition (pairs counted, ties one half; tie-corrected normal
// approximation with continuity correction), computed independently; the first case is also R's
// wilcox.test(1:5, 6:10, exact = FALSE): W = 0, p-value = 0.01219.
func TestMannWhitney(t *testing.T) {
	tests := []struct {
		name string
		x, y []float64
		u, p float64
	}{
		{"separated", []float64{1, 2, 3, 4, 5}, []float64{6, 7, 8, 9, 10}, 0, 0.012185780355344818},
		{"ties", []float64{1, 2, 2, 3, 5, 7}, []float64{2, 4, 6, 6, 8, 9, 10}, 8, 0.07216011300239515},
		{"ties-x-larger", []float64{3.1, 2.2, 5, 4, 4, 9}, []float64{1, 4, 2.2, 3.1}, 19, 0.15803542984956923},
		{"too-few", []float64{1}, []float64{2, 3}, 0, 1},
		{"all-equal", []float64{2, 2}, []float64{2, 2, 2}, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, p := MannWhitney(tt.x, tt.y)
			if u != tt.u || math.Abs(p-tt.p) > 1e-9 {
				t.Errorf("MannWhitney = U %g, p %.12g; want U %g, p %.12g", u, p, tt.u, tt.p)
			}
			if _, q := MannWhitney(tt.y, tt.x); math.Abs(q-p) > 1e-12 {
				t.Errorf("not symmetric: p %g one way, %g the other", p, q)
			}
		})
	}
}
