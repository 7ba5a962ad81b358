package loadgen

import (
	"cmp"
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/faultlab/faultlab/results"
)

// HalfClose is a client that half-closes: it connects, optionally sends one HTTP/1.1 keep-alive request and
// reads its response (Request), then sends its FIN (shutdown of the writing side) and keeps reading until the
// peer's FIN answers it. That is success (ok, Total the time of the peer's FIN); a peer that has not closed
// its side when the hold ends (Hold, 0: the attempt's timeout) is a timeout: the proxy sat in CLOSE_WAIT
// toward this client for the whole hold.
type HalfClose struct {
	Hold    time.Duration
	Request bool
	// Host is the request's Host header; empty means the destination's "address:port".
	Host string
}

var _ Workload = HalfClose{}

// errPeerKeptOpen is a half-closing attempt whose peer never closed its side.
var errPeerKeptOpen = errors.New("the peer did not close its side before the hold ended")

func newHalfClose(cfg WorkloadConfig) (Workload, error) {
	o, err := parseHoldOptions("halfclose", cfg, "hold", "request", "host")
	if err != nil {
		return nil, err
	}
	return HalfClose{Hold: o.Hold, Request: o.Request, Host: o.Host}, nil
}

// Attempt connects, runs the optional exchange, half-closes and waits for the peer's FIN.
func (w HalfClose) Attempt(ctx context.Context, d *Dialer, dst netip.AddrPort, rec *results.Record) {
	holdAttempt(ctx, rec, func(t0 time.Time) error {
		c, err := dialAttempt(ctx, t0, d, dst, rec)
		if err != nil {
			return err
		}
		defer c.Close()
		if w.Request {
			if err := exchangeOne(ctx, c, t0, cmp.Or(w.Host, dst.String()), rec); err != nil {
				return err
			}
		}
		if err := c.CloseWrite(); err != nil {
			return attemptError(results.PhaseWrite, err)
		}
		switch err := holdOpen(ctx, c, t0, w.Hold, closeOnFIN, rec); {
		case errors.Is(err, ErrPeerClosed):
			return nil // the peer answered the FIN with its own
		case err == nil:
			return attemptError(results.PhaseRead, timeoutError{errPeerKeptOpen})
		default:
			return err
		}
	})
}

// timeoutError marks err as a timeout for Classify.
type timeoutError struct{ error }

func (e timeoutError) Unwrap() error        { return e.error }
func (e timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }
