// Package analyses holds the scenario families' analyses: values with declared inputs, in the shape of
// golang.org/x/tools/go/analysis. An Analyzer reads one repetition of one cell from its run directory (the
// records, the pcaps, the state and process series, the daemons' logs) and returns a typed, JSON-serialisable
// result that lands in cell.json and results.json. A scenario enables analyses by name (`analyses:
// [port_budget]`); adding one is one new file here plus one line in Registry.
package analyses

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/results"
)

// Analyzer is one analysis.
type Analyzer struct {
	Name string
	Doc  string
	// Requires lists the analyses whose results this one reads from Input.ResultOf; they run first.
	Requires []*Analyzer
	// Run analyses one repetition of a cell.
	Run func(in *Input) (Output, error)
}

// Registry holds every analysis a scenario may enable, by name: the one table where they are chosen.
var Registry = map[string]*Analyzer{
	Capture.Name:      Capture,
	OldProcs.Name:     OldProcs,
	PortBudget.Name:   PortBudget,
	TimeWaitSide.Name: TimeWaitSide,
	ZeroWindow.Name:   ZeroWindow,
}

// Names lists the registered analyses, sorted (for spec.Vocabulary and messages).
func Names() []string {
	out := make([]string, 0, len(Registry))
	for n := range Registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Input is what an analysis reads: one repetition of one cell.
type Input struct {
	Dir   string    // the repetition's directory (results.CellDir)
	Cell  spec.Cell // the resolved cell
	Epoch time.Time // the cell's time zero: records' and reloads' times count from it
	// Addrs are each host's lab addresses (from the environment that ran the cell).
	Addrs map[string][]netip.Addr
	// ResultOf holds the results (Output.Value) of the analyses this one Requires.
	ResultOf map[*Analyzer]any
}

// Output is what an analysis returns.
type Output struct {
	Value   any              // the typed result, JSON-serialisable
	Summary string           // one line for the cell's notes
	Columns []results.Column // the analysis's own table, one row per cell
}

// Run runs the named analyses (and what they require, first) on one repetition and returns their results
// in dependency order. An analysis that fails, or whose requirement failed, is left out and its error
// joined into err; the others still run.
func Run(names []string, in Input) (out []results.AnalysisResult, err error) {
	order, err := plan(names)
	if err != nil {
		return nil, err
	}
	done := map[*Analyzer]any{}
	var errs []error
	for _, a := range order {
		in := in
		in.ResultOf = map[*Analyzer]any{}
		missing := false
		for _, r := range a.Requires {
			v, ok := done[r]
			missing = missing || !ok
			in.ResultOf[r] = v
		}
		if missing {
			errs = append(errs, fmt.Errorf("analysis %s: a required analysis failed", a.Name))
			continue
		}
		o, err := a.Run(&in)
		if err != nil {
			errs = append(errs, fmt.Errorf("analysis %s: %w", a.Name, err))
			continue
		}
		done[a] = o.Value
		if o.Value == nil {
			continue // nothing to say about this cell (e.g. no capture configured)
		}
		b, err := json.Marshal(o.Value)
		if err != nil {
			errs = append(errs, fmt.Errorf("analysis %s: encode result: %w", a.Name, err))
			continue
		}
		out = append(out, results.AnalysisResult{Name: a.Name, Rep: in.Cell.Rep, Summary: o.Summary,
			Columns: o.Columns, Result: b})
	}
	return out, errors.Join(errs...)
}

// plan orders the named analyses after their requirements (depth first, each once).
func plan(names []string) ([]*Analyzer, error) {
	var order []*Analyzer
	var visit func(a *Analyzer, path []string) error
	visit = func(a *Analyzer, path []string) error {
		if slices.Contains(order, a) {
			return nil
		}
		if slices.Contains(path, a.Name) {
			return fmt.Errorf("analyses: requirement cycle %v", append(path, a.Name))
		}
		for _, r := range a.Requires {
			if err := visit(r, append(path, a.Name)); err != nil {
				return err
			}
		}
		order = append(order, a)
		return nil
	}
	for _, n := range names {
		a, ok := Registry[n]
		if !ok {
			return nil, fmt.Errorf("analysis %q: not registered (known: %v)", n, Names())
		}
		if err := visit(a, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}
