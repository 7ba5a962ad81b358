package results

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// sampleReport is a deterministic report built from synthetic records through the real pipeline.
func sampleReport() *Report {
	legacyBursts := make([]int, 40)
	for i, n := range map[int]int{3: 120, 7: 15, 11: 35, 12: 80, 19: 3, 22: 60, 27: 110, 30: 7, 33: 1, 36: 40} {
		legacyBursts[i] = n
	}
	synBursts := make([]int, 40)
	synBursts[20] = 2
	mk := func(name string, bursts []int, reloads bool) *CellStats {
		recs, rel := synthCell(name, 10*time.Second, 250*time.Millisecond, bursts)
		if !reloads {
			rel = nil
		}
		if name == "syndrop" { // dropped SYNs are retransmitted after about 1 s, then 3 s
			for i := range recs {
				if i%40 == 0 && !recs[i].Failed() {
					extra := int64(1+i/40%2) * int64(time.Second)
					recs[i].Connect, recs[i].Total = recs[i].Connect+extra, recs[i].Total+extra
				}
			}
		}
		return Summarize(name, recs, rel, SummaryOptions{Seed: 42})
	}
	cells := map[string]*CellStats{
		"baseline": mk("baseline", nil, false), "legacy": mk("legacy", legacyBursts, true),
		"xmw": mk("xmw", nil, true), "syndrop": mk("syndrop", synBursts, true),
	}
	cells["syndrop"].ReloadsFailed = 1 // its claims are void
	exps := []Expectation{{Cell: "legacy", Failures: "some"}, {Cell: "xmw", Failures: "none"},
		{Cell: "xmw", BetterThan: "legacy"}, {Cell: "syndrop", ConnectP99AtLeast: time.Second},
		{Cell: "missing", Failures: "none"}, {Cell: "legacy", FewerResetsThan: "xmw"},
		{Cell: "xmw", Failures: "some"}, {Cell: "baseline", BetterThan: "legacy"}}
	r := &Report{Schema: Schema, Scenario: "reload-storm", Reference: "legacy",
		Started:  time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		Finished: time.Date(2025, 3, 1, 12, 1, 30, 0, time.UTC),
		Env: map[string]any{"kernel": "6.18.0", "engine": "nfqueue", "versions": map[string]any{"haproxy": "2.6.12"},
			"sysctls": map[string]any{"net.ipv4.tcp_migrate_req": 0}},
		Verdicts: Check(exps, cells)}
	for _, name := range []string{"baseline", "legacy", "xmw", "syndrop"} {
		r.Cells = append(r.Cells, CellReport{Name: name, Reps: 1, Stats: cells[name]})
	}
	r.Cells[1].Strategy, r.Cells[2].Strategy, r.Cells[2].Mitigations = "sf", "x", []string{"expose-fd listeners"}
	r.Cells[3].Notes = []string{"SYN-drop window 200ms"}
	for i := 1; i < 4; i++ {
		r.Cells[i].Storm = true
	}
	r.Cells[1].Analyses = []AnalysisResult{{Name: "capture/proxy-eth0", Columns: []Column{{"RSTs", "471"},
		{"SYNs", "10,000"}}, Result: json.RawMessage(`{"rsts":471}`)}}
	r.Cells[2].Analyses = []AnalysisResult{{Name: "capture/proxy-eth0", Columns: []Column{{"RSTs", "0"},
		{"SYNs", "10,000"}, {"RSTs | from proxy", "0"}}, Result: json.RawMessage(`{"rsts":0}`)},
		{Name: "exhaustion/lb", Summary: "no port pressure"}}
	for i := range r.Cells {
		r.Cells[i].Load = []LoadReport{{Target: 400, Achieved: 400, LagP50: 80 * time.Microsecond,
			LagP99: 4 * time.Millisecond, LagMax: 12 * time.Millisecond}}
	}
	r.Cells[3].Load[0].Achieved, r.Cells[3].Load[0].LagP99, r.Cells[3].Load[0].LagMax = 310, 2*time.Second, 3*time.Second
	r.Comparisons = CompareAll([]*CellStats{cells["legacy"], cells["xmw"], cells["syndrop"]}, "legacy")
	return r
}

func TestMarkdownGolden(t *testing.T) {
	tests := []struct{ name, reference, golden string }{
		{"vs_legacy", "legacy", "report_vs_legacy.golden"},
		{"no_reference", "", "report_no_reference.golden"},
		{"reference_not_a_cell", "missing", "report_no_reference.golden"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := sampleReport()
			r.Reference = tc.reference
			var buf bytes.Buffer
			if err := Markdown(&buf, r); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.golden, buf.Bytes())
		})
	}
}

// checkGolden compares got with testdata/name, rewriting the file first under -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (regenerate with go test ./results -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (regenerate with -update if intended):\n%s", path, got)
	}
}

func TestReportRoundTrip(t *testing.T) {
	r := sampleReport()
	path := filepath.Join(t.TempDir(), "report.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range r.Cells { // windows are not written
		r.Cells[i].Stats.WindowList = nil
	}
	// raw JSON comes back re-indented: compare the decoded results, then the rest
	for i := range r.Cells {
		for j, a := range r.Cells[i].Analyses {
			var want, gotV any
			_ = json.Unmarshal(a.Result, &want)
			if err := got.Cells[i].Analysis(a.Name, a.Rep, &gotV); err != nil && a.Result != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gotV, want) {
				t.Errorf("cell %s analysis %s: %v, want %v", r.Cells[i].Name, a.Name, gotV, want)
			}
			r.Cells[i].Analyses[j].Result, got.Cells[i].Analyses[j].Result = nil, nil
		}
	}
	// JSON numbers decode into float64 in the free-form Env
	r.Env["sysctls"] = map[string]any{"net.ipv4.tcp_migrate_req": 0.0}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", got, r)
	}
	b, _ := os.ReadFile(path)
	for _, key := range []string{`"schema": "faultlab.results/v1"`, `"failure_rate_ci"`, `"p99_ns"`,
		`"bad_window_ci"`, `"per_connection_p_value"`, `"false_alarm"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("report JSON lacks %s", key)
		}
	}
}

func TestReadReportErrors(t *testing.T) {
	tests := []struct{ name, content, want string }{
		{"wrong_schema", `{"schema":"faultlab.results/v0"}`, `schema "faultlab.results/v0"`},
		{"not_json", `{`, "report.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "report.json")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadReport(path); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadReport error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestLoadBehind checks the limits within which the open-loop measurement holds: 95% of the rate started,
// pacer lag p99 at most 500 ms; either one broken is reported, in words that name the numbers.
func TestLoadBehind(t *testing.T) {
	ok := LoadReport{Target: 1000, Achieved: 950, LagP99: 500 * time.Millisecond}
	if s := ok.Behind(); s != "" {
		t.Errorf("at the limits: %q, want none", s)
	}
	slow := ok
	slow.Achieved = 949
	late := ok
	late.LagP99 = 501 * time.Millisecond
	for _, l := range []LoadReport{slow, late} {
		if s := l.Behind(); !strings.Contains(s, "fell behind") || !strings.Contains(s, " of 1000 attempts/s") {
			t.Errorf("%+v: %q", l, s)
		}
	}
	c := CellReport{Load: []LoadReport{ok, late}}
	if c.Behind() != late.Behind() {
		t.Errorf("cell: %q, want the late repetition's", c.Behind())
	}
}

// TestMarkdownReplacedKinds: when a matrix row ran a service as another kind, the cell notes say which kind
// (and version) each cell ran; services that are the same everywhere are not listed.
func TestMarkdownReplacedKinds(t *testing.T) {
	r := sampleReport()
	for i := range r.Cells {
		r.Cells[i].Services = []ServiceMeta{{Name: "web", Kind: "nginx", Version: "1.22.1"},
			{Name: "lb", Kind: "haproxy", Version: "2.6.12"}}
	}
	r.Cells[3].Services[1] = ServiceMeta{Name: "lb", Kind: "tengine", Version: "3.1.0"}
	var buf bytes.Buffer
	if err := Markdown(&buf, r); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, want := range []string{"- **syndrop**: lb tengine 3.1.0;", "- **legacy**: lb haproxy 2.6.12;"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "web nginx") {
		t.Errorf("markdown lists a service whose kind never changes:\n%s", md)
	}
}
