package results

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// RunSchema identifies the run.json format; ReadRunMeta rejects any other.
const RunSchema = "faultlab.run/v1"

// The files of a run directory, the only input a report needs:
//
//	<run>/run.json                  RunMeta
//	<run>/<cell>/rep<N>/cell.json   CellMeta (CellDir gives the directory)
//	<run>/<cell>/rep<N>/records.jsonl, reloads.jsonl
//	<run>/results.json, table.md    WriteOutputs(Build(run))
const (
	RunFile     = "run.json"
	CellFile    = "cell.json"
	RecordsFile = "records.jsonl" // one Record per attempt
	ReloadsFile = "reloads.jsonl" // one ReloadEvent per reload (only when a storm ran)
	// CountersFile holds the kernel's TCP counters that moved over the cell's load, per host:
	// {"host": {"TcpExt.ListenOverflows": 12, ...}} (nstat's names).
	CountersFile = "counters.json"
	ResultsFile  = "results.json" // the "json" renderer
	TableFile    = "table.md"     // the "md" renderer
)

// RunMeta describes one run: what was planned and where it ran. The runner writes it at the start and again at
// the finish.
type RunMeta struct {
	Schema   string    `json:"schema"`
	Scenario string    `json:"scenario"`
	ID       string    `json:"id"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"` // zero until the run ends
	Mode     string    `json:"mode"`     // quick | long
	Seed     int64     `json:"seed"`
	// Reference is the cell the others are compared with ("" for none).
	Reference string        `json:"reference,omitempty"`
	Expect    []Expectation `json:"expect,omitempty"`
	// Sequential is set when the run adds rounds until its claims are decided: the p-value claims are then
	// judged by the sequential rule (CheckSequential), not as a fixed-size run.
	Sequential *SequentialPlan `json:"sequential,omitempty"`
	Cells      []CellRef       `json:"cells"`         // planned cells in run order
	Env        map[string]any  `json:"env,omitempty"` // kernel, provider, versions, engine...
	// Axes are the matrix's axes (each cell's levels are in its CellRef), for the axis columns and the
	// comparisons along an axis.
	Axes []AxisMeta `json:"axes,omitempty"`
	// CellAxes is each cell's level on each axis (cell -> axis -> level), for the cells from axes.
	CellAxes map[string]map[string]string `json:"cell_axes,omitempty"`
	// Shard is set when this run is one shard of a sharded run (faultlab run --shard); Shards when it is the
	// merge of several (faultlab merge), with Warnings about what the merge could not reconcile.
	Shard    *ShardMeta  `json:"shard,omitempty"`
	Shards   []ShardMeta `json:"shards,omitempty"`
	Warnings []string    `json:"warnings,omitempty"`
}

// CellRef names one planned repetition of a cell.
type CellRef struct {
	Name string `json:"name"`
	Rep  int    `json:"rep"`
}

// CellMeta is what the runner says about one repetition of a cell once it ended (also when it failed).
type CellMeta struct {
	Cell        string        `json:"cell"`
	Rep         int           `json:"rep"`
	Strategy    string        `json:"strategy,omitempty"`
	Mitigations []string      `json:"mitigations,omitempty"`
	Storm       bool          `json:"storm"`       // a reload storm ran: the reload columns apply
	Duration    time.Duration `json:"duration_ns"` // the measured duration (the end of the last window)
	// Services are the services the cell ran, in start order, with their kinds and versions (a matrix row
	// may replace one with another kind).
	Services []ServiceMeta `json:"services,omitempty"`
	Load     LoadReport    `json:"load"`
	Notes    []string      `json:"notes,omitempty"`
	// Info holds versions and the sysctls as read back; Build merges it into the report's Env.
	Info     map[string]any   `json:"info,omitempty"`
	Analyses []AnalysisResult `json:"analyses,omitempty"`
	Error    string           `json:"error,omitempty"` // the cell failed: why
}

// ServiceMeta is one service as a cell ran it.
type ServiceMeta struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Version string `json:"version,omitempty"`
}

// AnalysisResult is what one analysis (or built-in probe such as the impairment engine) said about one
// repetition of a cell. Result is the analysis's typed result as JSON.
type AnalysisResult struct {
	Name    string          `json:"name"`
	Rep     int             `json:"rep"`
	Summary string          `json:"summary,omitempty"` // one line, shown with the cell's notes
	Columns []Column        `json:"columns,omitempty"` // the analysis's own table: one row per cell
	Result  json.RawMessage `json:"result"`
}

// Column is one cell of an analysis's table row.
type Column struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// CellDir is the directory of one repetition of a cell: runDir/cell/rep<N>.
func CellDir(runDir, cell string, rep int) string {
	return filepath.Join(runDir, cell, "rep"+strconv.Itoa(rep))
}

// WriteRunMeta writes runDir/run.json atomically. An empty Schema is set to RunSchema.
func WriteRunMeta(runDir string, m *RunMeta) error {
	if m.Schema == "" {
		m.Schema = RunSchema
	}
	if err := writeJSONFile(filepath.Join(runDir, RunFile), m); err != nil {
		return fmt.Errorf("write run meta: %w", err)
	}
	return nil
}

// ReadRunMeta reads runDir/run.json. Its schema must be RunSchema.
func ReadRunMeta(runDir string) (*RunMeta, error) {
	path := filepath.Join(runDir, RunFile)
	var m RunMeta
	if err := readJSONFile(path, &m); err != nil {
		return nil, fmt.Errorf("read run meta: %w", err)
	}
	if m.Schema != RunSchema {
		return nil, fmt.Errorf("read run meta %s: schema %q, want %q", path, m.Schema, RunSchema)
	}
	return &m, nil
}

// WriteCellMeta writes cellDir/cell.json atomically.
func WriteCellMeta(cellDir string, m *CellMeta) error {
	if err := writeJSONFile(filepath.Join(cellDir, CellFile), m); err != nil {
		return fmt.Errorf("write cell meta: %w", err)
	}
	return nil
}

// ReadCellMeta reads cellDir/cell.json. A missing file gives an error wrapping fs.ErrNotExist (a cell that
// did not end: the run was killed in it).
func ReadCellMeta(cellDir string) (*CellMeta, error) {
	var m CellMeta
	if err := readJSONFile(filepath.Join(cellDir, CellFile), &m); err != nil {
		return nil, fmt.Errorf("read cell meta: %w", err)
	}
	return &m, nil
}

// writeJSONFile writes v as indented JSON to path, atomically.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// readJSONFile decodes the JSON file at path into v; errors name the path.
func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err // a *PathError: it names the path and wraps fs.ErrNotExist when missing
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
