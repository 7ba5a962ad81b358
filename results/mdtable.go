package results

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// mdColumn is one column of the main table: its heading and how a cell's statistics fill it.
type mdColumn struct {
	head string
	val  func(s *CellStats) string
}

// mdTable is the main table of a report, its columns chosen by what ran.
type mdTable struct {
	storm   bool          // a reload storm ran in some cell: reload columns, reload windows
	width   time.Duration // the fixed windows' width
	ref     *CellStats    // the reference cell's statistics; nil: no "p vs" column
	refName string
	cols    []mdColumn
	kernels bool // the cells ran on different kernels: a kernel column after the cell's name
}

func newMDTable(r *Report) *mdTable {
	t := &mdTable{width: DefaultWindowWidth, refName: r.Reference}
	for _, c := range r.Cells {
		t.storm = t.storm || c.Storm || (c.Stats != nil && c.Stats.Reloads > 0)
		if c.Stats != nil && c.Stats.WindowWidth > 0 && t.width == DefaultWindowWidth {
			t.width = c.Stats.WindowWidth
		}
	}
	if r.Reference != "" {
		t.ref = r.StatsByCell()[r.Reference]
	}
	t.kernels = kernelsDiffer(r)
	t.cols = []mdColumn{
		{"attempts", func(s *CellStats) string { return commas(s.Attempts) }},
		{"failed", func(s *CellStats) string { return commas(s.Failures) }},
		{"failure rate % (95% CI, clustered)", rateCol},
		{"resets", func(s *CellStats) string { return commas(s.Resets) }},
		{"timeouts", func(s *CellStats) string { return commas(s.Timeouts) }},
	}
	if t.storm {
		t.cols = append(t.cols, mdColumn{"reloads", reloadsCol},
			mdColumn{"bad reloads (95% CI, %)", func(s *CellStats) string { return badCol(s, true) }},
			mdColumn{"max fail/bad reload", maxCol})
	} else {
		t.cols = append(t.cols, mdColumn{"bad " + widthText(t.width) + " windows (95% CI, %)",
			func(s *CellStats) string { return badCol(s, false) }})
	}
	t.cols = append(t.cols,
		mdColumn{"connect p50", func(s *CellStats) string { return durCol(s.Connect.N, s.Connect.P50) }},
		mdColumn{"connect p99", func(s *CellStats) string { return durCol(s.Connect.N, s.Connect.P99) }},
		mdColumn{"total p99", func(s *CellStats) string { return durCol(s.Total.N, s.Total.P99) }})
	if t.ref != nil {
		t.cols = append(t.cols, mdColumn{"p vs " + mdEscape(r.Reference), t.pCol})
	}
	return t
}

func (t *mdTable) write(b *strings.Builder, r *Report) {
	heads := []string{"cell"}
	if t.kernels {
		heads = append(heads, "kernel")
	}
	for _, c := range t.cols {
		heads = append(heads, c.head)
	}
	mdRow(b, heads)
	b.WriteString(strings.Repeat("|---", len(heads)-len(t.cols)) + "|" + strings.Repeat("---:|", len(t.cols)) + "\n")
	for _, c := range r.Cells {
		row := []string{mdEscape(c.Name)}
		if t.kernels {
			row = append(row, mdEscape(c.Kernel))
		}
		for _, col := range t.cols {
			if c.Stats == nil {
				row = append(row, "–")
				continue
			}
			row = append(row, col.val(c.Stats))
		}
		mdRow(b, row)
	}
}

// kernelsDiffer reports whether the cells ran on different kernels (a run under several kernels).
func kernelsDiffer(r *Report) bool {
	return slices.ContainsFunc(r.Cells, func(c CellReport) bool { return c.Kernel != r.Cells[0].Kernel })
}

func mdRow(b *strings.Builder, cols []string) {
	b.WriteString("| " + strings.Join(cols, " | ") + " |\n")
}

func (t *mdTable) pCol(s *CellStats) string {
	if s == t.ref {
		return "(reference)"
	}
	return fmtP(Compare(s, t.ref).PValue)
}

// howToRead explains the methods behind the columns shown.
func (t *mdTable) howToRead() string {
	w := widthText(t.width)
	var parts []string
	interval := fmt.Sprintf("The failure rate's 95%% interval respects clustering: with %d or more bad windows "+
		"whole windows are resampled (percentile bootstrap, B=%d, seeded); with fewer, where the bootstrap "+
		"degenerates, it is an exact cluster-level interval: Clopper-Pearson on the bad windows, per attempt, "+
		"with one failure per bad window for the lower bound and the most failures seen in one window for the "+
		"upper. Either is widened where needed to cover the per-connection Clopper-Pearson interval, so it is "+
		"never narrower than independent attempts would give.", MinBootstrapBadWindows, DefaultResamples)
	if t.storm {
		parts = append(parts, fmt.Sprintf("How to read this: windows are reload windows (attempts assigned to "+
			"the nearest reload; fixed %s slices without reloads).", w), interval)
	} else {
		parts = append(parts, fmt.Sprintf("How to read this: no reload storm ran, so the clustering unit is a "+
			"fixed %s window (attempts by intended start).", w), interval)
	}
	parts = append(parts, "† marks a cell with zero failures: its upper bound is the per-connection "+
		"Clopper-Pearson bound (the cluster-level bound is never larger). The per-connection Wilson interval "+
		"(in the JSON report) ignores clustering and is too narrow when failures come in bursts.")
	if t.storm {
		parts = append(parts, `"Bad reloads" are windows with at least one failure, with a Clopper-Pearson exact `+
			`95% interval on their fraction; ‡ marks fixed windows (no reloads).`)
	} else {
		parts = append(parts, fmt.Sprintf(`"Bad %s windows" are windows with at least one failure, with a `+
			`Clopper-Pearson exact 95%% interval on their fraction.`, w))
	}
	if t.ref != nil {
		parts = append(parts, fmt.Sprintf(`"p vs %s" is the exact stratified (conditional) test, round by `+
			`round, that the cell has a smaller fraction of bad windows than the reference cell %s (unit: window; `+
			`with one round it is the one-sided Fisher exact test); unlike the verdicts it is not corrected for `+
			`multiple comparisons.`, t.refName, t.refName))
	}
	parts = append(parts, fmt.Sprintf("Latencies are over successful attempts, measured from the intended start "+
		"(pacer lag included); their quantiles come from a log-linear histogram, within %.1f%% of the exact "+
		"nearest-rank value (the maximum is exact).", 100*SketchRelativeError))
	return strings.Join(parts, " ")
}

// widthText names a window width for prose and headings: "1 s", or "500ms".
func widthText(d time.Duration) string {
	if d > 0 && d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + " s"
	}
	return fmtDur(d)
}

// wrap breaks text into lines of at most width bytes, at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(text) {
		if i > 0 && n+1+len(word) > width {
			b.WriteByte('\n')
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}

// mdAnalyses writes one small table per analysis that has columns: one row per cell and repetition that has
// it, the columns in the order of their first appearance.
func mdAnalyses(b *strings.Builder, r *Report) {
	var names []string
	for _, c := range r.Cells {
		for _, a := range c.Analyses {
			if len(a.Columns) > 0 && !slices.Contains(names, a.Name) {
				names = append(names, a.Name)
			}
		}
	}
	for _, name := range names {
		var cols []string
		for _, c := range r.Cells {
			for _, a := range c.Analyses {
				for _, col := range a.Columns {
					if a.Name == name && !slices.Contains(cols, col.Name) {
						cols = append(cols, col.Name)
					}
				}
			}
		}
		fmt.Fprintf(b, "\n### %s\n\n", name)
		heads := []string{"cell"}
		for _, col := range cols {
			heads = append(heads, mdEscape(col))
		}
		mdRow(b, heads)
		b.WriteString("|---|" + strings.Repeat("---:|", len(cols)) + "\n")
		for _, c := range r.Cells {
			for _, a := range c.Analyses {
				if a.Name == name && len(a.Columns) > 0 {
					mdRow(b, analysisRow(&c, a, cols))
				}
			}
		}
	}
}

// analysisRow is one row of an analysis's table: the cell (and repetition, when the cell has several), then
// the values of cols ("–" when the result does not set one).
func analysisRow(c *CellReport, a AnalysisResult, cols []string) []string {
	label := mdEscape(c.Name)
	if c.Reps > 1 {
		label += fmt.Sprintf(" rep%d", a.Rep)
	}
	row := []string{label}
	for _, name := range cols {
		v := "–"
		for _, col := range a.Columns {
			if col.Name == name {
				v = mdEscape(col.Value)
				break
			}
		}
		row = append(row, v)
	}
	return row
}
