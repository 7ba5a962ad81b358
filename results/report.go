package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Schema identifies the report format; ReadReport rejects any other.
const Schema = "faultlab.results/v1"

// Report is the result of one scenario run: what ran, where, and what it showed.
type Report struct {
	Schema   string    `json:"schema"`
	Scenario string    `json:"scenario"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Env is free-form from the runner: kernel, provider, versions, engine, sysctls.
	Env         map[string]any `json:"env,omitempty"`
	Cells       []CellReport   `json:"cells"`
	Comparisons []Comparison   `json:"comparisons,omitempty"`
	Verdicts    []Verdict      `json:"verdicts,omitempty"`
}

// CellReport is one cell of the matrix and its statistics.
type CellReport struct {
	Name        string     `json:"name"`
	Reps        int        `json:"reps"`
	Strategy    string     `json:"strategy,omitempty"`
	Mitigations []string   `json:"mitigations,omitempty"`
	Stats       *CellStats `json:"stats"`
	Notes       []string   `json:"notes,omitempty"`
	// Probes holds the probes' analyses (captures: totals, RSTs by sender, per-connection summary).
	Probes map[string]any `json:"probes,omitempty"`
}

// Cell returns the named cell, or nil.
func (r *Report) Cell(name string) *CellReport {
	for i := range r.Cells {
		if r.Cells[i].Name == name {
			return &r.Cells[i]
		}
	}
	return nil
}

// StatsByCell returns the cells' statistics by name, as Check takes them.
func (r *Report) StatsByCell() map[string]*CellStats {
	m := make(map[string]*CellStats, len(r.Cells))
	for _, c := range r.Cells {
		if c.Stats != nil {
			m[c.Name] = c.Stats
		}
	}
	return m
}

// WriteJSON writes the report as indented JSON, atomically (a temporary file renamed over path). An empty
// Schema is set to the current one.
func (r *Report) WriteJSON(path string) error {
	if r.Schema == "" {
		r.Schema = Schema
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	_, werr := tmp.Write(append(b, '\n'))
	if err := errors.Join(werr, tmp.Chmod(0o644), tmp.Close()); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// ReadReport reads a report written by WriteJSON.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read report %s: %w", path, err)
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("read report %s: schema %q, want %q", path, r.Schema, Schema)
	}
	return &r, nil
}
