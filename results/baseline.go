package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// BaselineSchema identifies the baseline format; ReadBaseline rejects any other.
const BaselineSchema = "faultlab.baseline/v1"

// Baseline is the compact record of one run that later runs are compared with (faultlab baseline save):
// per cell the counts the comparison tests, their intervals, the latency quantiles and the environment. It
// holds no record, so it stays a few KB however long the run was.
type Baseline struct {
	Schema   string    `json:"schema"`
	Scenario string    `json:"scenario"`
	RunID    string    `json:"run_id,omitempty"`
	Mode     string    `json:"mode"` // quick | long
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Env is what the comparison warns about when it differs: kernel, provider, faultlab's commit, Go.
	Env   BaselineEnv    `json:"env"`
	Cells []BaselineCell `json:"cells"`
}

// BaselineEnv is the environment a baseline was measured in.
type BaselineEnv struct {
	Kernel   string `json:"kernel,omitempty"`
	Provider string `json:"provider,omitempty"`
	Faultlab string `json:"faultlab,omitempty"`
	Go       string `json:"go,omitempty"`
	CPUs     int    `json:"cpus,omitempty"`
}

// BaselineCell is one cell of a baseline: its counts (per round too, for the dispersion between rounds),
// their 95% intervals and the latency quantiles.
type BaselineCell struct {
	Name        string        `json:"name"`
	Strategy    string        `json:"strategy,omitempty"`
	Mitigations []string      `json:"mitigations,omitempty"`
	Services    []ServiceMeta `json:"services,omitempty"`
	Storm       bool          `json:"storm"`

	Attempts      int `json:"attempts"`
	Failures      int `json:"failures"`
	Resets        int `json:"resets"`
	Timeouts      int `json:"timeouts"`
	Reloads       int `json:"reloads"`
	ReloadsFailed int `json:"reloads_failed"`

	WindowKind   string        `json:"window_kind"`
	WindowWidth  time.Duration `json:"window_width_ns,omitempty"`
	Windows      int           `json:"windows"`
	BadWindows   int           `json:"bad_windows"`
	ResetWindows int           `json:"reset_windows"`

	FailureRate float64  `json:"failure_rate"`
	RateCI      Interval `json:"failure_rate_ci"` // clustering-aware, as in results.json
	BadWindowCI Interval `json:"bad_window_ci"`   // Clopper-Pearson 95%

	Connect Quantiles     `json:"connect"`
	Total   Quantiles     `json:"total"`
	Rounds  []RoundCounts `json:"rounds,omitempty"`
}

// NewBaseline makes the baseline of a report. Cells without statistics (a cell that failed before its
// load) cannot be compared with: it returns an error naming them.
func NewBaseline(r *Report) (*Baseline, error) {
	b := &Baseline{Schema: BaselineSchema, Scenario: r.Scenario, Started: r.Started, Finished: r.Finished,
		Env: envOf(r.Env)}
	b.Mode, _ = r.Env["mode"].(string)
	if d, ok := r.Env["run_dir"].(string); ok {
		b.RunID = filepath.Base(d)
	}
	if b.Mode == "" {
		b.Mode = "quick"
	}
	for _, c := range r.Cells {
		st := c.Stats
		if st == nil {
			return nil, fmt.Errorf("baseline of %s: cell %s has no statistics (it did not run its load)",
				r.Scenario, c.Name)
		}
		b.Cells = append(b.Cells, BaselineCell{Name: c.Name, Strategy: c.Strategy, Mitigations: c.Mitigations,
			Services: c.Services, Storm: c.Storm || st.Storm, Attempts: st.Attempts, Failures: st.Failures,
			Resets: st.Resets, Timeouts: st.Timeouts, Reloads: st.Reloads, ReloadsFailed: st.ReloadsFailed,
			WindowKind: st.WindowKind, WindowWidth: st.WindowWidth, Windows: st.Windows,
			BadWindows: st.BadWindows, ResetWindows: st.ResetWindows, FailureRate: st.FailureRate,
			RateCI: st.RateCI, BadWindowCI: st.BadWindowCI, Connect: st.Connect, Total: st.Total,
			Rounds: st.Rounds})
	}
	if len(b.Cells) == 0 {
		return nil, fmt.Errorf("baseline of %s: the report has no cells", r.Scenario)
	}
	return b, nil
}

// envOf picks the environment fields a comparison warns about from a report's free-form Env.
func envOf(env map[string]any) BaselineEnv {
	s := func(k string) string { v, _ := env[k].(string); return v }
	e := BaselineEnv{Kernel: s("kernel"), Provider: s("provider"), Faultlab: s("faultlab"), Go: s("go")}
	if n, ok := env["cpus"].(float64); ok {
		e.CPUs = int(n)
	} else if n, ok := env["cpus"].(int); ok {
		e.CPUs = n
	}
	return e
}

// Cell returns the named cell, or nil.
func (b *Baseline) Cell(name string) *BaselineCell {
	for i := range b.Cells {
		if b.Cells[i].Name == name {
			return &b.Cells[i]
		}
	}
	return nil
}

// Write writes the baseline as indented JSON to path, atomically, creating its directory.
func (b *Baseline) Write(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write baseline: %w", err)
	}
	if err := writeJSONFile(path, b); err != nil {
		return fmt.Errorf("write baseline: %w", err)
	}
	return nil
}

// ReadBaseline reads a baseline written by Write; its schema must be BaselineSchema.
func ReadBaseline(path string) (*Baseline, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read baseline: %w", err)
	}
	var b Baseline
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("read baseline %s: %w", path, err)
	}
	if b.Schema != BaselineSchema {
		return nil, fmt.Errorf("read baseline %s: schema %q, want %q (a baseline saved by another version of "+
			"faultlab: save it again with `faultlab baseline save`)", path, b.Schema, BaselineSchema)
	}
	return &b, nil
}

// ReadRunReport reads what a comparison needs from a run: RUN_DIR/results.json (written by the run, and by
// `faultlab report RUN_DIR`), or the results.json file itself when path names one.
func ReadRunReport(path string) (*Report, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, ResultsFile)
	}
	r, err := ReadReport(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (a run killed before its end has none: `faultlab report RUN_DIR` writes it)",
			err)
	}
	return r, err
}
