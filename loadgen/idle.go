package loadgen

import (
	"context"
	"net/netip"
	"time"

	"github.com/faultlab/faultlab/results"
)

// Idle is a long-lived client that connects and sends nothing: a TCP session the proxy can only end by a
// timeout, a reload's hard stop or its exit. It holds the connection for Hold (0: until the attempt's timeout)
// and closes at once when the peer's FIN comes (outcome closed, Total the time of the FIN).
type Idle struct {
	Hold time.Duration
}

var _ Workload = Idle{}

func newIdle(cfg WorkloadConfig) (Workload, error) {
	o, err := parseHoldOptions("idle", cfg, "hold")
	if err != nil {
		return nil, err
	}
	return Idle{Hold: o.Hold}, nil
}

// Attempt connects and holds the connection.
func (w Idle) Attempt(ctx context.Context, d *Dialer, dst netip.AddrPort, rec *results.Record) {
	holdAttempt(ctx, rec, func(t0 time.Time) error {
		c, err := dialAttempt(ctx, t0, d, dst, rec)
		if err != nil {
			return err
		}
		defer c.Close()
		return holdOpen(ctx, c, t0, w.Hold, closeOnFIN, rec)
	})
}
