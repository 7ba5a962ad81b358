package results

import (
	"bytes"
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
	// Reference is the cell the others are compared with ("" for none).
	Reference string `json:"reference,omitempty"`
	// Env is free-form from the runner: kernel, provider, versions, engine, sysctls.
	Env         map[string]any `json:"env,omitempty"`
	Cells       []CellReport   `json:"cells"`
	Comparisons []Comparison   `json:"comparisons,omitempty"`
	// Drift is the machine's drift as the reference cell saw it: its bad-window fraction per round and a test
	// of their homogeneity (nil without a reference or with fewer than two rounds).
	Drift    *Drift    `json:"drift,omitempty"`
	Verdicts []Verdict `json:"verdicts,omitempty"`
	// Sequential is the state of a run that adds rounds until its claims are decided (nil for a fixed run).
	Sequential *SequentialReport `json:"sequential,omitempty"`
	// Axes are the matrix's axes; AlongAxes compares each cell with its neighbour at the axis's first level.
	Axes      []AxisMeta       `json:"axes,omitempty"`
	AlongAxes []AxisComparison `json:"along_axes,omitempty"`
	// Shard is this run's shard; Shards the shards a merged run combines, Warnings what merge noticed.
	Shard    *ShardMeta  `json:"shard,omitempty"`
	Shards   []ShardMeta `json:"shards,omitempty"`
	Warnings []string    `json:"warnings,omitempty"`
}

// CellReport is one cell of the matrix and its statistics.
type CellReport struct {
	Name string `json:"name"`
	Reps int    `json:"reps"`
	// Axes is the cell's level on each axis (nil for a cell not from axes).
	Axes map[string]string `json:"axes,omitempty"`
	// Kernel is the release of the kernel the cell ran on (its first shard's), in a merged run: one run under
	// several kernels (a scenario's kernels:) is merged from one part per kernel.
	Kernel string `json:"kernel,omitempty"`
	// Shards lists the shards that ran the cell's repetitions, in a merged run.
	Shards      []int    `json:"shards,omitempty"`
	Strategy    string   `json:"strategy,omitempty"`
	Mitigations []string `json:"mitigations,omitempty"`
	// Services are the services the cell ran, with their kinds and versions (its first repetition's).
	Services []ServiceMeta `json:"services,omitempty"`
	// Storm says a reload storm ran in some repetition: the reload columns apply.
	Storm bool       `json:"storm"`
	Stats *CellStats `json:"stats"`
	// Notes are the repetitions' notes in order, then each analysis's summary line.
	Notes []string `json:"notes,omitempty"`
	// Analyses are what the analyses (and built-in probes) said about each repetition; see Analysis.
	Analyses []AnalysisResult `json:"analyses,omitempty"`
	// Load is what the load generator achieved, one entry per repetition.
	Load []LoadReport `json:"load,omitempty"`
}

// LoadReport is what the load generator achieved in one repetition of a cell.
type LoadReport struct {
	Target   float64       `json:"target_per_s"`
	Achieved float64       `json:"achieved_per_s"` // attempts that really started, per second of the window
	LagP50   time.Duration `json:"lag_p50_ns"`     // start - intended start
	LagP99   time.Duration `json:"lag_p99_ns"`
	LagMax   time.Duration `json:"lag_max_ns"`
	// MaxInFlight is the most attempts the generator had running at once (0: not recorded).
	MaxInFlight int64 `json:"max_in_flight,omitempty"`
}

// The limits within which an open-loop measurement holds: the generator started nearly every attempt when
// it meant to. Beyond them the cell measures a machine that could not drive the workload (2 cores shared by
// the client, the proxy, the backends and the probes), not only the proxy.
const (
	MinAchievedShare = 0.95
	MaxLagP99        = 500 * time.Millisecond
)

// Behind says in plain words how the load generator fell behind its offered rate; "" when it kept up.
func (l LoadReport) Behind() string {
	if l.Target <= 0 || (l.Achieved >= MinAchievedShare*l.Target && l.LagP99 <= MaxLagP99) {
		return ""
	}
	return fmt.Sprintf("the load generator fell behind: %.0f of %.0f attempts/s started (%.0f%%), "+
		"lag p99 %s, max %s (limits: %.0f%%, p99 %s): this machine could not drive the workload, so the cell "+
		"measures an overloaded lab, not only the proxy", l.Achieved, l.Target, 100*l.Achieved/l.Target,
		l.LagP99.Round(time.Millisecond), l.LagMax.Round(time.Millisecond), 100*MinAchievedShare, MaxLagP99)
}

func (l LoadReport) String() string {
	s := fmt.Sprintf("load: %.0f of %.0f attempts/s, lag p50 %s p99 %s max %s", l.Achieved, l.Target,
		l.LagP50.Round(time.Microsecond), l.LagP99.Round(time.Microsecond), l.LagMax.Round(time.Microsecond))
	if l.MaxInFlight > 0 {
		s += fmt.Sprintf(", at most %d in flight", l.MaxInFlight)
	}
	return s
}

// Behind is the first repetition's LoadReport.Behind that is not empty.
func (c *CellReport) Behind() string {
	for _, l := range c.Load {
		if s := l.Behind(); s != "" {
			return s
		}
	}
	return ""
}

// ErrNoAnalysis is returned by CellReport.Analysis when the cell has no such result.
var ErrNoAnalysis = errors.New("no such analysis")

// Analysis decodes the result of the named analysis for repetition rep into v (a pointer to the analysis's
// result type). It returns an error wrapping ErrNoAnalysis when the cell has none.
func (c *CellReport) Analysis(name string, rep int, v any) error {
	for _, a := range c.Analyses {
		if a.Name != name || a.Rep != rep {
			continue
		}
		if err := json.Unmarshal(a.Result, v); err != nil {
			return fmt.Errorf("decode analysis %s of cell %s rep %d: %w", name, c.Name, rep, err)
		}
		return nil
	}
	return fmt.Errorf("cell %s rep %d: analysis %s: %w", c.Name, rep, name, ErrNoAnalysis)
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

// WriteJSON writes the report as indented JSON (as the "json" renderer does), atomically (a temporary file
// renamed over path). An empty Schema is set to the current one.
func (r *Report) WriteJSON(path string) error {
	if r.Schema == "" {
		r.Schema = Schema
	}
	var buf bytes.Buffer
	if err := JSON(&buf, r); err != nil {
		return err
	}
	if err := writeFileAtomic(path, buf.Bytes()); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file in path's directory and renames it over path, so a reader
// sees the old file or the new one, never a part. Errors name the path.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err // names the pattern and directory
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	_, werr := tmp.Write(data)
	if err := errors.Join(werr, tmp.Chmod(0o644), tmp.Close()); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path) // a *LinkError names both paths
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
