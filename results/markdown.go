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

// Markdown renders the report as Markdown: a header, one table row per cell, one small table per analysis that
// has columns, the cells' notes, the verdicts and a footnote on the methods. It reads well in a terminal too.
// "Tables follow the scenario": the reload columns appear only when a reload storm ran in some cell (Storm, or
// reloads recorded); otherwise the clustering unit is the fixed window and the table says so. The "p vs"
// column compares with r.Reference, and is left out when that is empty or not a cell of the report.
func Markdown(w io.Writer, r *Report) error {
	var b strings.Builder
	t := newMDTable(r)
	mdHeader(&b, r)
	mdShards(&b, r)
	mdBehind(&b, r)
	t.write(&b, r)
	mdAxes(&b, r)
	mdAnalyses(&b, r)
	mdNotes(&b, r)
	mdDrift(&b, r)
	mdVerdicts(&b, r)
	how := t.howToRead()
	if len(r.Verdicts) > 0 {
		how += " " + verdictLegend
	}
	b.WriteString("\n" + wrap(how, 110) + "\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write markdown: %w", err)
	}
	return nil
}

func mdHeader(b *strings.Builder, r *Report) {
	fmt.Fprintf(b, "# faultlab: %s\n\n", r.Scenario)
	const stamp = "2006-01-02 15:04:05Z"
	switch {
	case r.Started.IsZero():
	case r.Finished.IsZero():
		fmt.Fprintf(b, "Started %s, not finished (the run was killed, or is still running).\n\n",
			r.Started.UTC().Format(stamp))
	default:
		fmt.Fprintf(b, "Started %s, finished %s (%s).\n\n", r.Started.UTC().Format(stamp),
			r.Finished.UTC().Format(stamp), r.Finished.Sub(r.Started).Round(time.Second))
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

// badCol renders the bad windows and their interval; mark adds ‡ to windows that are not reload windows.
func badCol(s *CellStats, mark bool) string {
	if s.Windows == 0 {
		return "–"
	}
	m := ""
	if mark && s.WindowKind != WindowReload {
		m = " ‡"
	}
	return fmt.Sprintf("%s/%s [%s, %s]%s", commas(s.BadWindows), commas(s.Windows), pct(s.BadWindowCI.Lo),
		pct(s.BadWindowCI.Hi), m)
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

// pct formats a proportion as a percentage (no sign) with three significant digits.
func pct(p float64) string { return strings.TrimSuffix(fmtPct(p), "%") }

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func mdNotes(b *strings.Builder, r *Report) {
	var lines []string
	varying := varyingKinds(r.Cells)
	for _, c := range r.Cells {
		var parts []string
		for _, sv := range c.Services {
			if varying[sv.Name] {
				parts = append(parts, strings.TrimSpace(fmt.Sprintf("%s %s %s", sv.Name, sv.Kind, sv.Version)))
			}
		}
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

// varyingKinds names the services whose kind is not the same in every cell that ran them (a matrix row
// replaced them): the notes say which kind each cell ran.
func varyingKinds(cells []CellReport) map[string]bool {
	kinds := map[string]string{}
	out := map[string]bool{}
	for _, c := range cells {
		for _, sv := range c.Services {
			if k, ok := kinds[sv.Name]; ok && k != sv.Kind {
				out[sv.Name] = true
			}
			kinds[sv.Name] = sv.Kind
		}
	}
	return out
}

// mdBehind warns, above the table, of cells whose load generator fell behind.
func mdBehind(b *strings.Builder, r *Report) {
	for _, c := range r.Cells {
		if s := c.Behind(); s != "" {
			fmt.Fprintf(b, "**WARNING, cell %s**: %s.\n\n", c.Name, s)
		}
	}
}

// verdictMarks are the marks of the verdict list, by status.
var verdictMarks = map[Status]string{StatusHolds: "✔", StatusFails: "✘", StatusInconclusive: "?", StatusVoid: "∅"}

// stopReasons explains SequentialPlan.Stopped.
var stopReasons = map[string]string{
	"decided":     "every claim was decided",
	"last look":   "the last planned look was reached",
	"budget":      "the budget could not hold another round",
	"interrupted": "the run was interrupted",
}

func mdVerdicts(b *strings.Builder, r *Report) {
	if len(r.Verdicts) == 0 {
		return
	}
	n := map[Status]int{}
	for _, v := range r.Verdicts {
		n[v.Status]++
	}
	fmt.Fprintf(b, "\n## Verdicts: %d of %d claims hold (%d fail, %d inconclusive, %d void)\n\n", n[StatusHolds],
		len(r.Verdicts), n[StatusFails], n[StatusInconclusive], n[StatusVoid])
	if s := r.Sequential; s != nil {
		state := "more rounds may still decide " + plural(s.Undecided, "claim")
		if s.Done {
			state = "done"
		}
		var took string
		if s.Elapsed != "" {
			took = fmt.Sprintf(" in %s", s.Elapsed)
			if s.Budget != "" {
				took += " of a " + s.Budget + " budget"
			}
		}
		if why, ok := stopReasons[s.Stopped]; ok {
			state += "; stopped: " + why
		}
		fmt.Fprintf(b, "Sequential run: %d of at most %d looks (one per round)%s, %s. Rule: %s.\n\n", s.Looks,
			s.MaxLooks, took, state, s.Rule)
	}
	for _, v := range r.Verdicts {
		mark, ok := verdictMarks[v.Status]
		if !ok {
			mark = "✘"
		}
		fmt.Fprintf(b, "- %s %s: %s. False alarm: %s.\n", mark, v.Claim, v.Detail, v.FalseAlarm)
	}
}

// mdDrift states the machine's drift as the reference cell saw it.
func mdDrift(b *strings.Builder, r *Report) {
	if r.Drift == nil {
		return
	}
	fmt.Fprintf(b, "\nDrift between rounds: %s.\n", r.Drift.summary())
}

// verdictLegend explains the verdict marks.
const verdictLegend = "Verdicts: ✔ holds; ✘ fails (a failure was observed, or the reverse one-sided test is " +
	"significant); ? inconclusive (not enough evidence either way: the verdict estimates how much more running " +
	"would decide it at the observed rates); ∅ void (what the claim is about did not happen as asked, e.g. a " +
	"storm without completed reloads or with a failed reload command, or a comparison of a storm cell with a cell " +
	"without one: not evaluated). The better_than and fewer_resets_than claims use the exact stratified test by " +
	"round with Holm's correction across them; each verdict states its raw p, its Holm threshold and the family " +
	"size."
