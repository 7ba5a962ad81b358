package results

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestBuildRecordedRun rebuilds the report of a real run (testdata/recorded-run: two Reload cells recorded by
// `faultlab run results/testdata/recorded.yaml`, kept with its run.json, cell.json, records and reloads) and
// checks that results.json and table.md come out byte for byte as the run itself wrote them: the run
// directory is the only input a report needs. Under -update it rewrites them from the run directory with the
// current code (as `faultlab report` would).
func TestBuildRecordedRun(t *testing.T) {
	dir := filepath.Join("testdata", "recorded-run")
	rep, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, render := range map[string]Renderer{ResultsFile: JSON, TableFile: Markdown} {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := render(&got, rep); err != nil {
			t.Fatal(err)
		}
		if *update { // the run's own outputs, as the current code renders them
			if err := os.WriteFile(filepath.Join(dir, name), got.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			want = got.Bytes()
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s rebuilt from the run directory differs from the run's own (%d vs %d bytes)", name,
				got.Len(), len(want))
		}
	}
	if c := rep.Cell("legacy"); c == nil || c.Stats.Attempts != 2000 || !c.Storm {
		t.Errorf("legacy cell %+v", c)
	}
	// 1 of 18 legacy reloads bad against 0 of 19: not evidence either way, so inconclusive, never fails
	for _, v := range rep.Verdicts {
		if v.Cell == "socket-transfer" && (v.Status != StatusInconclusive || v.MoreWindows == 0) {
			t.Errorf("socket-transfer better_than legacy: %s (%d more reloads), want inconclusive with an "+
				"estimate: %s", v.Status, v.MoreWindows, v.Detail)
		}
	}
}
