package scenarios

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/runner"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/harness/testutil"
)

// BenchmarkLoadgenThroughHAProxy measures whether the load generator holds its schedule through real HAProxy
// and nginx on this machine: the baseline cell of reload.yaml (no reloads) at several rates for 10 s each.
// It reports achieved/target (the goal: >= 0.99 at 3000/s on 2 cores), the pacer's lag and failures.
//
//	go test ./scenarios -run '^$' -bench LoadgenThroughHAProxy -benchtime 1x
func BenchmarkLoadgenThroughHAProxy(b *testing.B) {
	testutil.RequireRoot(b)
	for _, rate := range []float64{1000, 3000, 5000} {
		b.Run(fmt.Sprintf("rate=%.0f", rate), func(b *testing.B) {
			s, err := spec.Load("reload.yaml")
			if err != nil {
				b.Fatal(err)
			}
			s.Workload.Rate, s.Workload.Duration = rate, 10*time.Second
			r, err := runner.New(s, runner.Options{OutDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			var cell spec.Cell
			for _, c := range r.Cells() {
				if c.Name == "baseline" {
					cell = c
				}
			}
			b.ResetTimer()
			out, err := r.RunCell(context.Background(), cell)
			if err != nil {
				b.Fatal(err)
			}
			l := out.Load
			b.ReportMetric(l.Achieved/rate, "achieved/target")
			b.ReportMetric(l.Achieved, "conn/s")
			b.ReportMetric(float64(l.LagP99.Microseconds())/1000, "lag-p99-ms")
			b.ReportMetric(float64(l.LagMax.Microseconds())/1000, "lag-max-ms")
			b.ReportMetric(float64(l.Failed), "failed")
		})
	}
}
