package scenarios

import (
	"context"
	"net/netip"
	"time"

	"github.com/faultlab/faultlab/loadgen"
	"github.com/faultlab/faultlab/results"
)

// connectOnly is a toy workload, written the way a new workload is added: one file with its type and its
// registry entry. Each attempt opens a TCP connection and closes it at once.
type connectOnly struct{}

var connectOnlyEntry = loadgen.WorkloadEntry{Kind: "connect-only", Doc: "open a connection and close it",
	Protocol: "http", New: func(loadgen.WorkloadConfig) (loadgen.Workload, error) { return connectOnly{}, nil }}

func (connectOnly) Attempt(ctx context.Context, d *loadgen.Dialer, dst netip.AddrPort, rec *results.Record) {
	t0 := loadgen.IntendedTime(ctx)
	c, err := d.Dial(ctx, dst)
	if err != nil {
		loadgen.SetOutcome(rec, err)
		return
	}
	rec.Connect = max(int64(time.Since(t0)), 1)
	rec.LocalPort = c.LocalPort()
	rec.Total = rec.Connect
	loadgen.SetOutcome(rec, c.Close())
}
