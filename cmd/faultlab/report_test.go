package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/results"
)

func TestReportArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    reportArgs
		wantErr string
	}{
		{"default", []string{"runs/x/1"}, reportArgs{dir: "runs/x/1"}, ""},
		{"format_before", []string{"--format", "json", "d"}, reportArgs{format: "json", dir: "d"}, ""},
		{"format_after", []string{"d", "--format=md"}, reportArgs{format: "md", dir: "d"}, ""},
		{"out_with_format", []string{"d", "--format", "md", "--out", "r.json"},
			reportArgs{format: "md", out: "r.json", dir: "d"}, ""},
		{"out_json_extension", []string{"d", "--out", "r.json"}, reportArgs{format: "json", out: "r.json", dir: "d"}, ""},
		{"out_other_extension", []string{"--out", "r.txt", "d"}, reportArgs{format: "md", out: "r.txt", dir: "d"}, ""},
		{"unknown_format", []string{"d", "--format", "pdf"}, reportArgs{}, `unknown format "pdf" (formats: html, json, junit, md)`},
		{"out_html_extension", []string{"d", "--out", "r.html"}, reportArgs{format: "html", out: "r.html", dir: "d"}, ""},
		{"no_dir", []string{"--format", "md"}, reportArgs{}, "want exactly one run directory"},
		{"two_dirs", []string{"a", "b"}, reportArgs{}, "want exactly one run directory"},
		{"unknown_flag", []string{"d", "--type", "md"}, reportArgs{}, "flag provided but not defined: -type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseReportArgs(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

// TestReportRunDir rebuilds a small run directory: by default it rewrites results.json and table.md (the same
// bytes each time) and prints the table; --format renders the same report without touching the directory.
func TestReportRunDir(t *testing.T) {
	dir := writeRunDir(t)
	var out bytes.Buffer
	if err := report(&reportArgs{dir: dir}, &out); err != nil {
		t.Fatal(err)
	}
	table := readFile(t, filepath.Join(dir, "table.md"))
	resultsJSON := readFile(t, filepath.Join(dir, "results.json"))
	if !strings.HasPrefix(out.String(), table) || !strings.Contains(table, "legacy") {
		t.Errorf("printed:\n%s\nwant the table:\n%s", out.String(), table)
	}
	if _, err := results.ReadReport(filepath.Join(dir, "results.json")); err != nil {
		t.Fatal(err)
	}

	out.Reset()
	if err := report(&reportArgs{dir: dir}, &out); err != nil {
		t.Fatal(err)
	}
	if readFile(t, filepath.Join(dir, "table.md")) != table || readFile(t, filepath.Join(dir, "results.json")) != resultsJSON {
		t.Error("a second report rewrote the outputs differently")
	}

	for format, want := range map[string]string{"md": table, "json": resultsJSON} {
		t.Run(format, func(t *testing.T) {
			var out bytes.Buffer
			if err := report(&reportArgs{dir: dir, format: format}, &out); err != nil {
				t.Fatal(err)
			}
			if out.String() != want {
				t.Errorf("--format %s printed:\n%s\nwant:\n%s", format, out.String(), want)
			}
			file := filepath.Join(t.TempDir(), "report."+format)
			out.Reset()
			if err := report(&reportArgs{dir: dir, format: format, out: file}, &out); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, file); got != want || out.Len() != 0 {
				t.Errorf("--out wrote:\n%s\nand printed %q; want the file:\n%s", got, out.String(), want)
			}
		})
	}
	if err := report(&reportArgs{dir: t.TempDir()}, io.Discard); err == nil {
		t.Error("a directory without run.json: no error")
	}
}

// writeRunDir writes a run directory with two cells of a few records each.
func writeRunDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cells := []results.CellRef{{Name: "legacy", Rep: 1}, {Name: "master-worker", Rep: 1}}
	meta := &results.RunMeta{Schema: results.RunSchema, Scenario: "reload", ID: "abc123",
		Started: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), Finished: time.Date(2026, 12, 2, 10, 1, 0, 0, time.UTC),
		Mode: "quick", Seed: 1, Reference: "legacy", Cells: cells}
	if err := results.WriteRunMeta(dir, meta); err != nil {
		t.Fatal(err)
	}
	for i, c := range cells {
		cd := results.CellDir(dir, c.Name, c.Rep)
		if err := os.MkdirAll(cd, 0o755); err != nil {
			t.Fatal(err)
		}
		w, err := results.CreateRecordWriter(filepath.Join(cd, "records.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		for seq := range 100 {
			r := results.Record{Cell: c.Name, Rep: c.Rep, Seq: uint64(seq), Intended: int64(seq) * 1e7,
				Start: int64(seq) * 1e7, Connect: 1e5, FirstByte: 2e5, Total: 3e5, Outcome: results.OutcomeOK,
				Phase: results.PhaseDone, BytesIn: 100, BytesOut: 20}
			if i == 0 && seq%10 == 0 {
				r.Outcome, r.Phase, r.Errno, r.FirstByte, r.Total = results.OutcomeReset, results.PhaseRead,
					"ECONNRESET", 0, 0
			}
			if err := w.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		cm := &results.CellMeta{Cell: c.Name, Rep: c.Rep, Duration: time.Second,
			Load: results.LoadReport{Target: 100, Achieved: 100}}
		if err := results.WriteCellMeta(cd, cm); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
