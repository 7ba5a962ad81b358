package loadgen

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"time"

	"github.com/faultlab/faultlab/results"
)

// Workload is what one attempt does on the wire (HTTP10; a MySQL handshake later, as one more file).
//
// Attempt connects to dst with d, runs one exchange and fills rec: Connect, FirstByte, Total (durations from
// IntendedTime(ctx)), BytesIn, BytesOut, LocalPort, and the outcome through SetOutcome. Run has already set
// Cell, Rep, Seq, Intended and Start. ctx carries the attempt's deadline (intended time + Config.Timeout); a
// deadline that passes is a timeout in the phase the attempt was in.
type Workload interface {
	Attempt(ctx context.Context, d *Dialer, dst netip.AddrPort, rec *results.Record)
}

type intendedKey struct{}

// WithIntended returns ctx carrying t as the attempt's intended (scheduled) start.
func WithIntended(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, intendedKey{}, t)
}

// IntendedTime is the attempt's intended start carried by ctx; time.Now() when ctx carries none (an attempt
// run outside Run). Workloads measure their durations from it, so a stalled generator shows up as latency.
func IntendedTime(ctx context.Context) time.Time {
	if t, ok := ctx.Value(intendedKey{}).(time.Time); ok {
		return t
	}
	return time.Now()
}

// sinceNS is the time since t in nanoseconds, at least 1 so a reached milestone is never recorded as zero
// ("not reached").
func sinceNS(t time.Time) int64 {
	return max(int64(time.Since(t)), 1)
}

// dialAttempt connects an attempt to dst and records its connect time and local port (the local port of a
// failed connect too, when the dialer knows it).
func dialAttempt(ctx context.Context, t0 time.Time, d *Dialer, dst netip.AddrPort, rec *results.Record) (*Conn, error) {
	c, err := d.Dial(ctx, dst)
	if err != nil {
		var ae *AttemptError
		if errors.As(err, &ae) {
			rec.LocalPort = ae.LocalPort
		}
		return nil, err
	}
	rec.Connect = sinceNS(t0)
	rec.LocalPort = c.LocalPort()
	return c, nil
}

// deadlineConn is the part of a connection a workload needs to bound its I/O by ctx.
type deadlineConn interface {
	SetDeadline(time.Time) error
}

// bindContext applies ctx's deadline to c and makes ctx's cancellation interrupt c's I/O. The returned stop
// must be called when the I/O is over.
func bindContext(ctx context.Context, c deadlineConn) (stop func() bool) {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	return context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })
}

// ioError wraps an I/O error of phase. When ctx was cancelled (not timed out), the poisoned deadline's error is
// replaced by the cancellation, so it is not mistaken for a timeout.
func ioError(ctx context.Context, phase results.Phase, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) && errors.Is(err, os.ErrDeadlineExceeded) {
		err = context.Canceled
	}
	return attemptError(phase, err)
}
