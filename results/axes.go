package results

import (
	"fmt"
	"maps"
	"strings"
)

// AxisMeta is one axis of a run's matrix: its name and its levels, in order.
type AxisMeta struct {
	Name   string   `json:"name"`
	Levels []string `json:"levels"`
}

// AxisComparison compares a cell with its neighbour along one axis: the cell at the axis's first level
// (Base) with the same level on every other axis. It is for reading a matrix, not a claim: no correction for
// the many comparisons a large matrix makes.
type AxisComparison struct {
	Axis  string `json:"axis"`
	Level string `json:"level"`
	Base  string `json:"base_level"`
	// Failures of Attempts in the cell (A) and in its neighbour (B).
	AFailures int `json:"a_failures"`
	AAttempts int `json:"a_attempts"`
	BFailures int `json:"b_failures"`
	BAttempts int `json:"b_attempts"`
	Comparison
}

// CompareAlongAxes compares, for every axis with two levels or more, each cell at a later level with the cell
// at the first level that is at the same level on every other axis (Compare: bad windows, stratified by
// round). A cell without such a neighbour (excluded, or not run) is left out.
func CompareAlongAxes(axes []AxisMeta, cells []CellReport) []AxisComparison {
	byLevels := map[string]*CellReport{}
	for i := range cells {
		if cells[i].Axes != nil {
			byLevels[levelsKey(axes, cells[i].Axes)] = &cells[i]
		}
	}
	var out []AxisComparison
	for _, ax := range axes {
		if len(ax.Levels) < 2 {
			continue
		}
		for i := range cells {
			c := &cells[i]
			l, ok := c.Axes[ax.Name]
			if !ok || l == ax.Levels[0] {
				continue
			}
			at := maps.Clone(c.Axes)
			at[ax.Name] = ax.Levels[0]
			base := byLevels[levelsKey(axes, at)]
			if base == nil || c.Stats == nil || base.Stats == nil {
				continue
			}
			out = append(out, AxisComparison{Axis: ax.Name, Level: l, Base: ax.Levels[0],
				AFailures: c.Stats.Failures, AAttempts: c.Stats.Attempts, BFailures: base.Stats.Failures,
				BAttempts: base.Stats.Attempts, Comparison: Compare(c.Stats, base.Stats)})
		}
	}
	return out
}

func levelsKey(axes []AxisMeta, levels map[string]string) string {
	parts := make([]string, len(axes))
	for i, ax := range axes {
		parts[i] = levels[ax.Name]
	}
	return strings.Join(parts, "\x00")
}

// mdAxes renders the cells' levels, one column per axis, and the comparisons along the axes.
func mdAxes(b *strings.Builder, r *Report) {
	if len(r.Axes) == 0 {
		return
	}
	b.WriteString("\n## Axes\n\n| cell |")
	for _, ax := range r.Axes {
		fmt.Fprintf(b, " %s |", mdEscape(ax.Name))
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(r.Axes)) + "\n")
	for _, c := range r.Cells {
		if c.Axes == nil {
			continue
		}
		fmt.Fprintf(b, "| %s |", mdEscape(c.Name))
		for _, ax := range r.Axes {
			fmt.Fprintf(b, " %s |", mdEscape(c.Axes[ax.Name]))
		}
		b.WriteString("\n")
	}
	if len(r.AlongAxes) == 0 {
		return
	}
	b.WriteString("\nAlong the axes (each cell against the one at the axis's first level, every other axis " +
		"alike; bad windows, exact stratified test by round, one-sided; not corrected for the number of " +
		"comparisons):\n\n| axis | cell | vs | failed | failed (vs) | bad windows | bad windows (vs) | p fewer | p more |\n" +
		"|---|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, a := range r.AlongAxes {
		fmt.Fprintf(b, "| %s | %s | %s | %d/%d | %d/%d | %d/%d | %d/%d | %s | %s |\n", mdEscape(a.Axis),
			mdEscape(a.A), mdEscape(a.B), a.AFailures, a.AAttempts, a.BFailures, a.BAttempts, a.ABad, a.AWindows,
			a.BBad, a.BWindows, fmtP(a.PValue), fmtP(a.ReverseP))
	}
}

// mdShards says which shards a merged run combines and what the merge warned about.
func mdShards(b *strings.Builder, r *Report) {
	if r.Shard != nil {
		fmt.Fprintf(b, "Shard %d of %d (by %s): `faultlab merge` combines the shards' directories.\n\n",
			r.Shard.Index, r.Shard.Count, r.Shard.Unit)
	}
	if len(r.Shards) > 0 {
		fmt.Fprintf(b, "Merged from %d shards (by %s):\n", len(r.Shards), r.Shards[0].Unit)
		for _, s := range r.Shards {
			fmt.Fprintf(b, "- shard %d/%d: run %s on %s, kernel %s, %s\n", s.Index, s.Count, s.ID, s.Machine,
				s.Kernel, plural(len(s.Cells), "cell repetition"))
		}
		b.WriteString("\n")
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(b, "Warning: %s\n\n", w)
	}
}
