package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// captureResult stands for an analysis's typed result.
type captureResult struct {
	RSTs     int            `json:"rsts"`
	BySender map[string]int `json:"rsts_by_sender"`
}

// synthRun is a run directory written as the runner writes one: a storm cell and a cell without reloads.
type synthRun struct {
	dir     string
	meta    *RunMeta
	records map[string][]Record // by cell, all repetitions
	reloads map[string][]ReloadEvent
}

const synthDur = 2 * time.Second

// newSynthRun writes run.json and one repetition of "legacy" (a reload storm with bursts of resets, a capture
// analysis) and of "xmw" (no storm, no failures). A third planned cell, "notrun", never ran.
func newSynthRun(t *testing.T) *synthRun {
	t.Helper()
	s := &synthRun{dir: t.TempDir(), records: map[string][]Record{}, reloads: map[string][]ReloadEvent{}}
	s.meta = &RunMeta{Scenario: "reload-storm", ID: "abc123", Mode: "quick", Seed: 42, Reference: "legacy",
		Started:  time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		Finished: time.Date(2025, 3, 1, 12, 0, 10, 0, time.UTC),
		Expect: []Expectation{{Cell: "legacy", Failures: "some"}, {Cell: "xmw", Failures: "none"},
			{Cell: "xmw", ConnectP99AtLeast: time.Second}, {Cell: "notrun", Failures: "none"},
			{Cell: "xmw", FewerResetsThan: "notrun"}},
		Cells: []CellRef{{"legacy", 0}, {"xmw", 0}, {"notrun", 0}},
		Env:   map[string]any{"kernel": "6.18.0", "provider": "netns"}}
	if err := WriteRunMeta(s.dir, s.meta); err != nil {
		t.Fatal(err)
	}
	res, _ := json.Marshal(captureResult{RSTs: 75, BySender: map[string]int{"proxy": 75}})
	s.addRep(t, &CellMeta{Cell: "legacy", Strategy: "sf", Storm: true, Notes: []string{"storm every 250ms"},
		Info: map[string]any{"haproxy": "2.6.12", "sysctls": map[string]any{"net.ipv4.tcp_migrate_req": 0}},
		Analyses: []AnalysisResult{{Name: "capture/proxy-eth0", Summary: "75 RSTs, all from the proxy",
			Columns: []Column{{"RSTs", "75"}, {"from proxy", "75"}}, Result: res}}},
		[]int{0, 40, 0, 0, 25, 0, 10})
	s.addRep(t, &CellMeta{Cell: "xmw", Strategy: "x", Mitigations: []string{"expose-fd listeners"}}, nil)
	return s
}

// addRep writes one repetition: records (and reloads when m.Storm), then cell.json unless m is nil-ish.
func (s *synthRun) addRep(t *testing.T, m *CellMeta, bursts []int) string {
	t.Helper()
	recs, rel := synthCell(m.Cell, synthDur, 250*time.Millisecond, bursts)
	for i := range recs {
		recs[i].Rep = m.Rep
	}
	dir := CellDir(s.dir, m.Cell, m.Rep)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeJSONL(t, filepath.Join(dir, RecordsFile), recs)
	s.records[m.Cell] = append(s.records[m.Cell], recs...)
	if m.Storm {
		for i := range rel {
			rel[i].Rep = m.Rep
		}
		writeJSONL(t, filepath.Join(dir, ReloadsFile), rel)
		s.reloads[m.Cell] = append(s.reloads[m.Cell], rel...)
	}
	m.Duration = synthDur
	m.Load = LoadReport{Target: 1000, Achieved: 1000, LagP50: 50 * time.Microsecond,
		LagP99: 50 * time.Microsecond, LagMax: 50 * time.Microsecond}
	if err := WriteCellMeta(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir
}

func build(t *testing.T, dir string) *Report {
	t.Helper()
	r, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBuild(t *testing.T) {
	s := newSynthRun(t)
	r := build(t, s.dir)
	if len(r.Cells) != 2 || r.Cells[0].Name != "legacy" || r.Cells[1].Name != "xmw" {
		t.Fatalf("cells %v, want legacy and xmw (notrun never ran)", cellNamesOf(r))
	}
	if r.Scenario != "reload-storm" || r.Reference != "legacy" || !r.Started.Equal(s.meta.Started) ||
		!r.Finished.Equal(s.meta.Finished) || r.Schema != Schema {
		t.Errorf("report header %q %q %v %v %q", r.Scenario, r.Reference, r.Started, r.Finished, r.Schema)
	}
	for _, c := range r.Cells { // streamed from the files = summarised in memory, same seed and window end
		want := Summarize(c.Name, s.records[c.Name], s.reloads[c.Name],
			SummaryOptions{Window: WindowOptions{End: synthDur}, Seed: 42})
		if !reflect.DeepEqual(c.Stats, want) {
			t.Errorf("cell %s: Build's statistics differ from Summarize's:\n%+v\n%+v", c.Name, c.Stats, want)
		}
		if c.Reps != 1 || len(c.Load) != 1 || c.Load[0].Target != 1000 {
			t.Errorf("cell %s: %d reps, load %+v", c.Name, c.Reps, c.Load)
		}
	}
	legacy, xmw := r.Cell("legacy"), r.Cell("xmw")
	if legacy.Stats.Failures != 75 || legacy.Stats.Reloads != 8 || legacy.Stats.BadWindows != 3 ||
		!legacy.Storm || legacy.Strategy != "sf" {
		t.Errorf("legacy: %d failures, %d reloads, %d bad, storm %v, strategy %q", legacy.Stats.Failures,
			legacy.Stats.Reloads, legacy.Stats.BadWindows, legacy.Storm, legacy.Strategy)
	}
	if xmw.Stats.Failures != 0 || xmw.Stats.Reloads != 0 || xmw.Storm || xmw.Stats.WindowKind != WindowFixed ||
		!reflect.DeepEqual(xmw.Mitigations, []string{"expose-fd listeners"}) {
		t.Errorf("xmw: %d failures, %d reloads, storm %v, %s windows", xmw.Stats.Failures, xmw.Stats.Reloads,
			xmw.Storm, xmw.Stats.WindowKind)
	}
	wantNotes := []string{"storm every 250ms", "capture/proxy-eth0: 75 RSTs, all from the proxy"}
	if !reflect.DeepEqual(legacy.Notes, wantNotes) {
		t.Errorf("legacy notes %q, want %q", legacy.Notes, wantNotes)
	}
	var pass []bool
	for _, v := range r.Verdicts {
		pass = append(pass, v.Pass)
	}
	if want := []bool{true, true, false}; !reflect.DeepEqual(pass, want) { // the claims about notrun left out
		t.Errorf("verdicts pass %v, want %v: %+v", pass, want, r.Verdicts)
	}
	if len(r.Comparisons) != 1 || r.Comparisons[0].A != "xmw" || r.Comparisons[0].B != "legacy" {
		t.Errorf("comparisons %+v, want xmw vs legacy", r.Comparisons)
	}
	wantEnv := map[string]any{"kernel": "6.18.0", "provider": "netns", "haproxy": "2.6.12",
		"sysctls": map[string]any{"legacy/rep0": map[string]any{"net.ipv4.tcp_migrate_req": 0.0}}}
	if !reflect.DeepEqual(r.Env, wantEnv) {
		t.Errorf("env %v, want %v", r.Env, wantEnv)
	}
}

func cellNamesOf(r *Report) []string {
	var names []string
	for _, c := range r.Cells {
		names = append(names, c.Name)
	}
	return names
}

func TestCellReportAnalysis(t *testing.T) {
	r := build(t, newSynthRun(t).dir)
	var got captureResult
	if err := r.Cell("legacy").Analysis("capture/proxy-eth0", 0, &got); err != nil {
		t.Fatal(err)
	}
	if got.RSTs != 75 || got.BySender["proxy"] != 75 {
		t.Errorf("decoded %+v", got)
	}
	for _, tc := range []struct {
		cell, name string
		rep        int
	}{{"legacy", "capture/proxy-eth0", 1}, {"legacy", "exhaustion/lb", 0}, {"xmw", "capture/proxy-eth0", 0}} {
		if err := r.Cell(tc.cell).Analysis(tc.name, tc.rep, &got); !errors.Is(err, ErrNoAnalysis) {
			t.Errorf("%s %s rep %d: error %v, want ErrNoAnalysis", tc.cell, tc.name, tc.rep, err)
		}
	}
	var wrong []string
	if err := r.Cell("legacy").Analysis("capture/proxy-eth0", 0, &wrong); err == nil ||
		errors.Is(err, ErrNoAnalysis) {
		t.Errorf("decoding into the wrong type: error %v", err)
	}
}

// TestBuildDeterministic builds twice and writes the outputs each time: the same bytes (map order and the
// bootstrap must not leak in), and what ReadReport reads back.
func TestBuildDeterministic(t *testing.T) {
	s := newSynthRun(t)
	var outs [2][2][]byte
	for i := range outs {
		if err := WriteOutputs(s.dir, build(t, s.dir)); err != nil {
			t.Fatal(err)
		}
		for j, f := range []string{ResultsFile, TableFile} {
			b, err := os.ReadFile(filepath.Join(s.dir, f))
			if err != nil {
				t.Fatal(err)
			}
			outs[i][j] = b
		}
	}
	if !bytes.Equal(outs[0][0], outs[1][0]) || !bytes.Equal(outs[0][1], outs[1][1]) {
		t.Error("building twice gave different results.json or table.md")
	}
	if _, err := ReadReport(filepath.Join(s.dir, ResultsFile)); err != nil {
		t.Error(err)
	}
	var md bytes.Buffer // the renderers give what WriteOutputs wrote
	if err := Renderers["md"](&md, build(t, s.dir)); err != nil || !bytes.Equal(md.Bytes(), outs[0][1]) {
		t.Errorf("md renderer differs from table.md (err %v)", err)
	}
	entries, _ := os.ReadDir(s.dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
	checkGolden(t, "build_table.golden", outs[0][1])
}

func TestMarkdownFollowsScenario(t *testing.T) {
	s := newSynthRun(t)
	var storm bytes.Buffer
	if err := Markdown(&storm, build(t, s.dir)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| reloads |", "| bad reloads (95% CI, %) |", "| max fail/bad reload |",
		"| p vs legacy", "(reference)", "### capture/proxy-eth0", "| cell | RSTs | from proxy |",
		"| legacy | 75 | 75 |", "capture/proxy-eth0: 75 RSTs, all from the proxy", `"Bad reloads"`} {
		if !strings.Contains(strings.ReplaceAll(storm.String(), "\n", " "), want) {
			t.Errorf("storm table lacks %q", want)
		}
	}
	// the same run without the storm cell: no reload columns, fixed windows named as such
	s.meta.Cells, s.meta.Reference = []CellRef{{"xmw", 0}}, ""
	if err := WriteRunMeta(s.dir, s.meta); err != nil {
		t.Fatal(err)
	}
	var calm bytes.Buffer
	if err := Markdown(&calm, build(t, s.dir)); err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"| reloads |", "bad reload", "max fail", "p vs", "###", "‡"} {
		if strings.Contains(calm.String(), absent) {
			t.Errorf("table without a storm mentions %q:\n%s", absent, calm.String())
		}
	}
	unwrapped := strings.ReplaceAll(calm.String(), "\n", " ")
	for _, want := range []string{"| bad 1 s windows (95% CI, %) |", "no reload storm ran", `"Bad 1 s windows"`} {
		if !strings.Contains(unwrapped, want) {
			t.Errorf("table without a storm lacks %q:\n%s", want, calm.String())
		}
	}
}

// TestBuildKilledRun: a repetition without cell.json and a truncated last record are summarised from what
// they hold, with notes; repetitions of a cell are pooled.
func TestBuildKilledRun(t *testing.T) {
	s := newSynthRun(t)
	s.meta.Cells = append(s.meta.Cells, CellRef{"xmw", 1}, CellRef{"legacy", 1})
	s.meta.Finished = time.Time{}
	if err := WriteRunMeta(s.dir, s.meta); err != nil {
		t.Fatal(err)
	}
	dir := s.addRep(t, &CellMeta{Cell: "xmw", Rep: 1, Notes: []string{"second rep"}}, nil)
	f, err := os.OpenFile(filepath.Join(dir, RecordsFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"cell":"xmw","rep":1,"seq":99`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dir = s.addRep(t, &CellMeta{Cell: "legacy", Rep: 1, Storm: true}, []int{0, 5})
	if err := os.Remove(filepath.Join(dir, CellFile)); err != nil {
		t.Fatal(err)
	}
	r := build(t, s.dir)
	xmw, legacy := r.Cell("xmw"), r.Cell("legacy")
	if xmw.Reps != 2 || xmw.Stats.Attempts != 4000 || xmw.Stats.Reps != 2 || len(xmw.Load) != 2 {
		t.Errorf("xmw: %d reps, %d attempts, %d loads; want 2 reps of 2,000 complete records", xmw.Reps,
			xmw.Stats.Attempts, len(xmw.Load))
	}
	wantNotes := []string{"second rep",
		"rep1: records.jsonl: truncated last line (a killed run): kept the 2000 records before it"}
	if !reflect.DeepEqual(xmw.Notes, wantNotes) {
		t.Errorf("xmw notes %q, want %q", xmw.Notes, wantNotes)
	}
	if legacy.Reps != 2 || legacy.Stats.Attempts != 4000 || legacy.Stats.Failures != 80 || len(legacy.Load) != 1 ||
		!containsNote(legacy.Notes, "rep1: incomplete: no cell.json") {
		t.Errorf("legacy: %d reps, %d attempts, %d failures, %d loads, notes %q", legacy.Reps,
			legacy.Stats.Attempts, legacy.Stats.Failures, len(legacy.Load), legacy.Notes)
	}
	var md bytes.Buffer
	if err := Markdown(&md, r); err != nil || !strings.Contains(md.String(), "not finished") {
		t.Errorf("markdown of an unfinished run (err %v):\n%s", err, md.String())
	}
}

func containsNote(notes []string, sub string) bool {
	for _, n := range notes {
		if strings.Contains(n, sub) {
			return true
		}
	}
	return false
}

func TestRunMetaIO(t *testing.T) {
	dir := t.TempDir()
	m := &RunMeta{Scenario: "s", ID: "x", Seed: 7, Expect: []Expectation{{Cell: "a",
		ConnectP99AtLeast: time.Second}}, Cells: []CellRef{{"a", 0}}}
	if err := WriteRunMeta(dir, m); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRunMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) || got.Schema != RunSchema {
		t.Errorf("run meta round trip: %+v, want %+v", got, m)
	}
	b, _ := os.ReadFile(filepath.Join(dir, RunFile))
	if !strings.Contains(string(b), `"connect_p99_at_least_ns": 1000000000`) {
		t.Errorf("run.json expectations not in snake case:\n%s", b)
	}
	cm := &CellMeta{Cell: "a", Duration: time.Second, Error: "boom"}
	if err := WriteCellMeta(dir, cm); err != nil {
		t.Fatal(err)
	}
	if gotC, err := ReadCellMeta(dir); err != nil || !reflect.DeepEqual(gotC, cm) {
		t.Errorf("cell meta round trip: %+v (%v), want %+v", gotC, err, cm)
	}

	missing := t.TempDir()
	if _, err := ReadCellMeta(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing cell.json: %v, want fs.ErrNotExist", err)
	}
	if _, err := Build(missing); err == nil || !strings.Contains(err.Error(), filepath.Join(missing, RunFile)) {
		t.Errorf("Build without run.json: %v, want an error naming the file", err)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, RunFile), []byte(`{"schema":"faultlab.run/v0"}`), 0o644)
	if _, err := ReadRunMeta(bad); err == nil || !strings.Contains(err.Error(), `schema "faultlab.run/v0"`) {
		t.Errorf("wrong schema: %v", err)
	}
	os.WriteFile(filepath.Join(bad, RunFile), []byte(`{"schema":`), 0o644)
	if _, err := ReadRunMeta(bad); err == nil || !strings.Contains(err.Error(), filepath.Join(bad, RunFile)) {
		t.Errorf("bad JSON: %v, want an error naming the file", err)
	}
	if err := WriteCellMeta(filepath.Join(missing, "nope"), cm); err == nil ||
		!strings.Contains(err.Error(), filepath.Join(missing, "nope")) {
		t.Errorf("write into a missing directory: %v, want an error naming it", err)
	}
	if got := CellDir("run", "legacy", 2); got != filepath.Join("run", "legacy", "rep2") {
		t.Errorf("CellDir = %s", got)
	}
}
