package results

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// RegressionRenderers are the formats of a comparison with a baseline, by name.
var RegressionRenderers = map[string]func(io.Writer, *Regression) error{
	"md":    RegressionMarkdown,
	"json":  RegressionJSON,
	"junit": RegressionJUnit,
}

// RegressionMarkdown renders a comparison as a short Markdown page: warnings, one row per cell and metric,
// then the worse ones spelled out and the method.
func RegressionMarkdown(w io.Writer, g *Regression) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# faultlab compare: %s (%s mode)\n\n", g.Scenario, g.Mode)
	fmt.Fprintf(&b, "%d worse, %d better, %d same, %d inconclusive (alpha %g, equivalence margin x%g)\n\n",
		g.Count(RegressWorse), g.Count(RegressBetter), g.Count(RegressSame), g.Count(RegressInconclusive),
		g.Alpha, g.Margin)
	for _, w := range g.Warnings {
		fmt.Fprintf(&b, "WARNING: %s\n", w)
	}
	if len(g.Warnings) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("| cell | metric | verdict | baseline | run | odds ratio (interval) | p worse | p better |\n")
	b.WriteString("|---|---|---|---:|---:|---|---:|---:|\n")
	for _, r := range g.Results {
		verdict := r.Status
		if r.Status == RegressWorse {
			verdict = "**WORSE**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d/%d | %d/%d | %.3g [%.3g, %s] | %s | %s |\n", r.Cell, r.Metric,
			verdict, r.BaseBad, r.BaseWindows, r.RunBad, r.RunWindows, r.OddsRatio, r.OddsRatioCI.Lo,
			fmtHi(r.OddsRatioCI.Hi), fmtP(r.PWorse), fmtP(r.PBetter))
	}
	b.WriteString("\n")
	for _, r := range g.Results {
		if r.Status == RegressWorse {
			fmt.Fprintf(&b, "- WORSE: %s, %s: %s\n", r.Cell, r.Metric, r.Detail)
		}
	}
	b.WriteString("\n" + wrap("How it was decided: "+g.Method+".", 110) + "\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write comparison: %w", err)
	}
	return nil
}

// RegressionJSON renders a comparison as indented JSON.
func RegressionJSON(w io.Writer, g *Regression) error {
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return fmt.Errorf("encode comparison: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write comparison: %w", err)
	}
	return nil
}
