package results

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"html"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// recordedReport rebuilds the recorded run's report (testdata/recorded-run, a real two-cell Reload run).
func recordedReport(t *testing.T) (*Report, string) {
	t.Helper()
	dir := filepath.Join("testdata", "recorded-run")
	r, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

// TestJUnitGolden renders the recorded run's verdicts as JUnit XML (testdata/recorded_junit.golden) and
// checks it parses as XML with one test case per claim.
func TestJUnitGolden(t *testing.T) {
	r, _ := recordedReport(t)
	var buf bytes.Buffer
	if err := JUnit(&buf, r); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "recorded_junit.golden", buf.Bytes())
	var parsed junitSuites
	if err := xml.Unmarshal(buf.Bytes(), &parsed); err != nil {
		t.Fatal(err)
	}
	if s := parsed.Suites[0]; s.Tests != len(r.Verdicts) || len(s.Cases) != len(r.Verdicts) {
		t.Errorf("%d test cases, want one per claim (%d)", s.Tests, len(r.Verdicts))
	}
}

// TestRegressionMarkdownGolden renders the comparison of the doubled rerun with its baseline.
func TestRegressionMarkdownGolden(t *testing.T) {
	g, err := CompareBaseline(fixtureBaseline(t), compareFixture(t, "double"), RegressOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := RegressionMarkdown(&buf, g); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "compare_double.golden", buf.Bytes())
}

var (
	reHeading = regexp.MustCompile(`<h([12])[^>]*>([^<]*)</h[12]>`)
	reFigure  = regexp.MustCompile(`<figure id="([^"]+)"><img class="plot" alt="([^"]*)" src="data:image/svg\+xml;base64,([^"]+)">`)
	reMissing = regexp.MustCompile(`<p class="missing">([^<]*)</p>`)
)

// htmlStructure is the skeleton of an HTML report: headings, table rows, figures (id, title, whether the
// image is an SVG of gonum/plot with text in it) and the plots left out. The SVGs' bytes are left out of the
// golden file: they change with gonum/plot's version, the page's structure should not.
func htmlStructure(page string) (string, error) {
	page = html.UnescapeString(page) // the template writes the data URIs' + as &#43;
	var b strings.Builder
	for _, m := range reHeading.FindAllStringSubmatch(page, -1) {
		fmt.Fprintf(&b, "h%s %s\n", m[1], m[2])
	}
	fmt.Fprintf(&b, "table rows %d\n", strings.Count(page, "<tr>"))
	for _, m := range reFigure.FindAllStringSubmatch(page, -1) {
		svg, err := base64.StdEncoding.DecodeString(m[3])
		if err != nil {
			return "", fmt.Errorf("figure %s: %w", m[1], err)
		}
		ok := bytes.Contains(svg, []byte("<svg")) && bytes.Contains(svg, []byte("</svg>")) && len(svg) > 2000
		fmt.Fprintf(&b, "figure %s %q svg=%v\n", m[1], m[2], ok)
	}
	for _, m := range reMissing.FindAllStringSubmatch(page, -1) {
		fmt.Fprintf(&b, "missing %s\n", m[1])
	}
	return b.String(), nil
}

// TestHTMLStructure renders the recorded run's HTML page from its run directory and checks its structure
// against testdata/recorded_html.golden: the cells' table, the verdicts, four plots (failure rate, bad
// windows, connect CDF, reload timeline), each a complete SVG, and the plots the run has no data for named.
func TestHTMLStructure(t *testing.T) {
	r, dir := recordedReport(t)
	var buf bytes.Buffer
	if err := HTML(&buf, r, dir); err != nil {
		t.Fatal(err)
	}
	s, err := htmlStructure(buf.String())
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "recorded_html.golden", []byte(s))
	if strings.Contains(buf.String(), "http://") || strings.Contains(buf.String(), "https://") {
		t.Errorf("the page refers to the network; it must be self-contained")
	}
}

// TestZeroWindowFigure reads the zero_window analysis's result as that analysis writes it (a list, one per
// capturing host, with the counts inline) and plots the fraction per cell; cells without it are left out.
func TestZeroWindowFigure(t *testing.T) {
	r := &Report{Cells: []CellReport{
		{Name: "buf16k", Analyses: []AnalysisResult{{Name: "zero_window",
			Result: []byte(`[{"host":"proxy","conns":42,"with_zero_window":24,"fraction":0.571}]`)}}},
		{Name: "buf1m", Analyses: []AnalysisResult{{Name: "zero_window",
			Result: []byte(`[{"host":"proxy","conns":42,"with_zero_window":0,"fraction":0}]`)}}},
		{Name: "no-analysis"},
	}}
	f, ok, why, err := zeroWindowFigure(r)
	if err != nil || !ok {
		t.Fatalf("no figure: %v %s", err, why)
	}
	if f.ID != "zero-window" || !strings.HasPrefix(f.URI, "data:image/svg+xml;base64,") {
		t.Errorf("figure %s %.40s", f.ID, f.URI)
	}
	svg, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(f.URI, "data:image/svg+xml;base64,"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(svg, []byte("buf16k")) || !bytes.Contains(svg, []byte("buf1m")) ||
		bytes.Contains(svg, []byte("no-analysis")) {
		t.Errorf("the plot's cells are not buf16k and buf1m only")
	}
}
