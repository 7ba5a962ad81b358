package results

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

const howToRead = `How to read this: the failure rate's 95% interval respects clustering: whole reload windows
(attempts assigned to the nearest reload; fixed 1 s slices without reloads) are resampled, percentile
bootstrap, B=2000, seeded. † marks a cell with zero failures, where that bootstrap degenerates: its upper bound
is the per-connection Clopper-Pearson bound, which ignores clustering. The per-connection Wilson interval (in
the JSON report) ignores clustering and is too narrow when failures come in bursts. "Bad reloads" are windows
with at least one failure, with a Clopper-Pearson exact 95% interval on their fraction; ‡ marks fixed windows
(no reloads). "p vs" is the one-sided Fisher exact test that the cell has a smaller fraction of bad windows
than the baseline (unit: window). Latencies are over successful attempts, measured from the intended start
(pacer lag included), nearest-rank quantiles.`

// Markdown renders the report as Markdown: a header, one table row per cell, the cells' notes, the verdicts and
// a footnote on the methods. It reads well in a terminal too. baseline names the cell the p-values compare
// with; the column is left out when it is empty or not a cell of the report.
func Markdown(w io.Writer, r *Report, baseline string) error {
	var b strings.Builder
	mdHeader(&b, r)
	mdBehind(&b, r)
	mdTable(&b, r, baseline)
	mdNotes(&b, r)
	mdVerdicts(&b, r)
	b.WriteString("\n" + howToRead + "\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write markdown: %w", err)
	}
	return nil
}

func mdHeader(b *strings.Builder, r *Report) {
	fmt.Fprintf(b, "# faultlab: %s\n\n", r.Scenario)
	if !r.Started.IsZero() {
		fmt.Fprintf(b, "Started %s, finished %s (%s).\n\n", r.Started.UTC().Format("2006-01-02 15:04:05Z"),
			r.Finished.UTC().Format("2006-01-02 15:04:05Z"), r.Finished.Sub(r.Started).Round(1e9))
	}
	if len(r.Env) == 0 {
		return
	}
	b.WriteString("Environment:\n")
	for _, k := range slices.Sorted(maps.Keys(r.Env)) {
		fmt.Fprintf(b, "- %s: %s\n", k, envValue(r.Env[k]))
	}
	b.WriteString("\n")
}

// envValue renders a free-form environment value: strings as they are, anything else as compact JSON.
func envValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	j, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(j)
}

func mdTable(b *strings.Builder, r *Report, baseline string) {
	stats := r.StatsByCell()
	base := stats[baseline]
	cols := []string{"cell", "attempts", "failed", "failure rate % (95% CI, clustered)", "resets", "timeouts",
		"reloads", "bad reloads (95% CI, %)", "max fail/bad reload", "connect p50", "connect p99", "total p99"}
	if base != nil {
		cols = append(cols, "p vs "+baseline)
	}
	b.WriteString("| " + strings.Join(cols, " | ") + " |\n|---|")
	b.WriteString(strings.Repeat("---:|", len(cols)-1) + "\n")
	for _, c := range r.Cells {
		row := append([]string{mdEscape(c.Name)}, statCols(c.Stats)...)
		if base != nil {
			row = append(row, pCol(c.Stats, base))
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
}

// statCols renders a cell's statistics columns (dashes when it has none).
func statCols(s *CellStats) []string {
	if s == nil {
		return slices.Repeat([]string{"–"}, 11)
	}
	return []string{commas(s.Attempts), commas(s.Failures), rateCol(s), commas(s.Resets), commas(s.Timeouts),
		reloadsCol(s), badCol(s), maxCol(s), durCol(s.Connect.N, s.Connect.P50),
		durCol(s.Connect.N, s.Connect.P99), durCol(s.Total.N, s.Total.P99)}
}

func rateCol(s *CellStats) string {
	if s.Attempts == 0 {
		return "–"
	}
	mark := ""
	if s.Failures == 0 {
		mark = " †"
	}
	return fmt.Sprintf("%s [%s, %s]%s", pct(s.FailureRate), pct(s.RateCI.Lo), pct(s.RateCI.Hi), mark)
}

func reloadsCol(s *CellStats) string {
	if s.ReloadsFailed > 0 {
		return fmt.Sprintf("%s (%s failed)", commas(s.Reloads), commas(s.ReloadsFailed))
	}
	return commas(s.Reloads)
}

func badCol(s *CellStats) string {
	if s.Windows == 0 {
		return "–"
	}
	mark := ""
	if s.WindowKind != WindowReload {
		mark = " ‡"
	}
	return fmt.Sprintf("%s/%s [%s, %s]%s", commas(s.BadWindows), commas(s.Windows), pct(s.BadWindowCI.Lo),
		pct(s.BadWindowCI.Hi), mark)
}

func maxCol(s *CellStats) string {
	if s.BadWindows == 0 {
		return "–"
	}
	return commas(s.FailuresPerBadWindowMax)
}

func durCol(n int, d time.Duration) string {
	if n == 0 {
		return "–"
	}
	return fmtDur(d)
}

func pCol(s, base *CellStats) string {
	switch {
	case s == nil:
		return "–"
	case s == base:
		return "(baseline)"
	}
	return fmtP(Compare(s, base).PValue)
}

// pct formats a proportion as a percentage (no sign) with three significant digits.
func pct(p float64) string { return strings.TrimSuffix(fmtPct(p), "%") }

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func mdNotes(b *strings.Builder, r *Report) {
	var lines []string
	for _, c := range r.Cells {
		var parts []string
		if c.Strategy != "" {
			parts = append(parts, "strategy "+c.Strategy)
		}
		if len(c.Mitigations) > 0 {
			parts = append(parts, "mitigations "+strings.Join(c.Mitigations, ", "))
		}
		if c.Reps > 1 {
			parts = append(parts, fmt.Sprintf("%d repetitions", c.Reps))
		}
		for _, l := range c.Load {
			parts = append(parts, l.String())
		}
		parts = append(parts, c.Notes...)
		if len(parts) > 0 {
			lines = append(lines, fmt.Sprintf("- **%s**: %s\n", c.Name, strings.Join(parts, "; ")))
		}
	}
	if len(lines) > 0 {
		b.WriteString("\nCells:\n" + strings.Join(lines, ""))
	}
}

// mdBehind warns, above the table, of cells whose load generator fell behind.
func mdBehind(b *strings.Builder, r *Report) {
	for _, c := range r.Cells {
		if s := c.Behind(); s != "" {
			fmt.Fprintf(b, "**WARNING, cell %s**: %s.\n\n", c.Name, s)
		}
	}
}

func mdVerdicts(b *strings.Builder, r *Report) {
	if len(r.Verdicts) == 0 {
		return
	}
	pass := 0
	for _, v := range r.Verdicts {
		if v.Pass {
			pass++
		}
	}
	fmt.Fprintf(b, "\n## Verdicts: %d of %d claims hold\n\n", pass, len(r.Verdicts))
	for _, v := range r.Verdicts {
		mark := "✘"
		if v.Pass {
			mark = "✔"
		}
		fmt.Fprintf(b, "- %s %s: %s. False alarm: %s.\n", mark, v.Claim, v.Detail, v.FalseAlarm)
	}
}
