package results

import (
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

// HTML renders the report as one self-contained page (no network, no file beside it): the mitigation table
// with intervals, the verdicts, and the plots as SVG data URIs (gonum/plot). Plots that need more than
// results.json (latency CDF, reload timeline, socket states) read runDir; with runDir "" or its files missing
// the page says which plots it left out.
func HTML(w io.Writer, r *Report, runDir string) error {
	figs, missing := Figures(r, runDir)
	var md strings.Builder
	if err := Markdown(&md, r); err != nil {
		return err
	}
	page := htmlPage{R: r, Figures: figs, Missing: missing, Markdown: md.String(), Rows: htmlRows(r),
		Kernels: kernelsDiffer(r)}
	if err := htmlTemplate.Execute(w, page); err != nil {
		return fmt.Errorf("write html: %w", err)
	}
	return nil
}

type htmlPage struct {
	R        *Report
	Rows     []htmlRow
	Figures  []Figure
	Missing  []string
	Markdown string
	Kernels  bool // the cells ran on different kernels: a kernel column
}

// htmlRow is one cell of the mitigation table, formatted.
type htmlRow struct {
	Cell, Kernel, Mitigation, Attempts, Failures, Rate, RateCI, Bad, BadCI, Resets, Connect, VsRef string
	Worse                                                                                          bool
}

func htmlRows(r *Report) []htmlRow {
	var rows []htmlRow
	for _, c := range r.Cells {
		parts := c.Mitigations
		if c.Strategy != "" {
			parts = append([]string{c.Strategy}, parts...)
		}
		row := htmlRow{Cell: c.Name, Kernel: c.Kernel, Mitigation: strings.Join(parts, " + ")}
		if st := c.Stats; st != nil {
			row.Attempts, row.Failures, row.Resets = commas(st.Attempts), commas(st.Failures), commas(st.Resets)
			row.Rate = fmtPct(st.FailureRate)
			row.RateCI = fmt.Sprintf("[%s, %s]", fmtPct(st.RateCI.Lo), fmtPct(st.RateCI.Hi))
			row.Bad = fmt.Sprintf("%s/%s %s", commas(st.BadWindows), commas(st.Windows), windowsUnit(st))
			row.BadCI = fmt.Sprintf("[%s, %s]", fmtPct(st.BadWindowCI.Lo), fmtPct(st.BadWindowCI.Hi))
			row.Connect = fmt.Sprintf("%s / %s", fmtDur(st.Connect.P50), fmtDur(st.Connect.P99))
		}
		for _, cmp := range r.Comparisons {
			if cmp.A == c.Name && cmp.Measure == badWindows.name {
				row.VsRef = fmt.Sprintf("p=%s (reverse %s)", fmtP(cmp.PValue), fmtP(cmp.ReverseP))
			}
		}
		rows = append(rows, row)
	}
	return rows
}

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"env":   envValue,
	"uri":   func(s string) template.URL { return template.URL(s) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>faultlab: {{.R.Scenario}}</title>
<style>
body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
td:first-child,th:first-child{text-align:left}.fails,.void{color:#b00;font-weight:bold}.holds{color:#070}
.inconclusive{color:#a60}figure{margin:1.5em 0}figcaption{font-size:14px;color:#444;max-width:900px}
pre{font-size:12px;overflow-x:auto;background:#f6f6f6;padding:.5em}
</style></head>
<body>
<h1>faultlab: {{.R.Scenario}}</h1>
<p>Started {{stamp .R.Started}}{{if not .R.Finished.IsZero}}, finished {{stamp .R.Finished}}{{else}}, not finished{{end}}.
{{with .R.Reference}}Reference cell: <b>{{.}}</b>.{{end}}</p>
<h2 id="environment">Environment</h2>
<ul>{{range $k, $v := .R.Env}}<li>{{$k}}: {{env $v}}</li>{{end}}</ul>
<h2 id="cells">Cells</h2>
<table><tr><th>cell</th>{{if .Kernels}}<th>kernel</th>{{end}}<th>reload / mitigations</th><th>attempts</th><th>failures</th><th>failure rate</th>
<th>95% (clustered)</th><th>bad windows</th><th>95% (Clopper-Pearson)</th><th>resets</th>
<th>connect p50 / p99</th><th>vs reference (bad windows)</th></tr>
{{range .Rows}}<tr><td>{{.Cell}}</td>{{if $.Kernels}}<td>{{.Kernel}}</td>{{end}}<td>{{.Mitigation}}</td><td>{{.Attempts}}</td><td>{{.Failures}}</td>
<td>{{.Rate}}</td><td>{{.RateCI}}</td><td>{{.Bad}}</td><td>{{.BadCI}}</td><td>{{.Resets}}</td><td>{{.Connect}}</td>
<td>{{.VsRef}}</td></tr>
{{end}}</table>
{{if .R.Verdicts}}<h2 id="verdicts">Verdicts</h2>
<table><tr><th>cell</th><th>claim</th><th>verdict</th><th>detail</th></tr>
{{range .R.Verdicts}}<tr><td>{{.Cell}}</td><td style="text-align:left">{{.Claim}}</td>
<td class="{{.Status}}">{{.Status}}</td><td style="text-align:left;font-size:12px">{{.Detail}}<br><i>false alarm: {{.FalseAlarm}}</i></td></tr>
{{end}}</table>{{end}}
<h2 id="plots">Plots</h2>
{{range .Figures}}<figure id="{{.ID}}"><img class="plot" alt="{{.Title}}" src="{{uri .URI}}">
<figcaption><b>{{.Title}}.</b> {{.Caption}}</figcaption></figure>
{{end}}{{range .Missing}}<p class="missing">Not plotted: {{.}}</p>
{{end}}
<h2 id="table">The Markdown table (as <code>table.md</code>)</h2>
<details><summary>show</summary><pre>{{.Markdown}}</pre></details>
<script>
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img.plot'), ok = 0;
  imgs.forEach(function (i) { if (i.complete && i.naturalWidth > 0) ok++; });
  document.body.setAttribute('data-plots-loaded', ok + '/' + imgs.length);
});
</script>
</body></html>
`))
