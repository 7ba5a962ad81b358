package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/faultlab/faultlab/harness/services"
	"github.com/faultlab/faultlab/results"
)

// reportChecks asks every proxy that runs health checks what they say about their servers at the end of the
// load, and records each answer as the cell's "checks/<service>" result: the checker's own account of check
// failures, beside the capture's and the kernel's.
func (c *cellRun) reportChecks(ctx context.Context) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(c.svcs)) {
		cr, ok := c.svcs[name].(services.CheckReporter)
		if !ok {
			continue
		}
		rep, err := cr.CheckReport(ctx)
		if errors.Is(err, services.ErrNoChecks) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b, err := json.Marshal(rep)
		if err != nil {
			errs = append(errs, fmt.Errorf("encode check report: %w", err))
			continue
		}
		failed := "-"
		if rep.Failed >= 0 {
			failed = fmt.Sprint(rep.Failed)
		}
		c.addAnalysis(results.AnalysisResult{Name: "checks/" + name, Rep: c.cell.Rep, Summary: rep.String(),
			Columns: []results.Column{{Name: "servers up", Value: fmt.Sprintf("%d/%d", rep.Up, rep.Servers)},
				{Name: "failing", Value: fmt.Sprint(rep.Failing)}, {Name: "failed checks", Value: failed}},
			Result: b})
	}
	return errors.Join(errs...)
}
