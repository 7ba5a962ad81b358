package loadgen

import (
	"cmp"
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/faultlab/faultlab/results"
)

// NoFIN is a client that never answers a FIN: it connects, optionally sends one HTTP/1.1 keep-alive request
// (Request) and then holds the socket open for Hold (0: until the attempt's timeout), even after the peer's
// FIN has come, and closes only then. The peer that closed first stays in FIN_WAIT2 meanwhile: held by the
// proxy (timeout client-fin) while it keeps the session, orphaned (tcp_fin_timeout) once it closed its socket
// (seeds/000). The outcome is closed when the FIN came before the hold's end (Total the time of the FIN).
type NoFIN struct {
	Hold    time.Duration
	Request bool
	// Host is the request's Host header; empty means the destination's "address:port".
	Host string
}

var _ Workload = NoFIN{}

func newNoFIN(cfg WorkloadConfig) (Workload, error) {
	o, err := parseHoldOptions("nofin", cfg, "hold", "request", "host")
	if err != nil {
		return nil, err
	}
	return NoFIN{Hold: o.Hold, Request: o.Request, Host: o.Host}, nil
}

// Attempt connects, runs the optional exchange and holds the socket, deaf to the peer's FIN.
func (w NoFIN) Attempt(ctx context.Context, d *Dialer, dst netip.AddrPort, rec *results.Record) {
	holdAttempt(ctx, rec, func(t0 time.Time) error {
		c, err := dialAttempt(ctx, t0, d, dst, rec)
		if err != nil {
			return err
		}
		defer c.Close()
		if w.Request {
			if err := exchangeOne(ctx, c, t0, cmp.Or(w.Host, dst.String()), rec); err != nil {
				if errors.Is(err, ErrPeerClosed) { // a response ended by the server's FIN: deaf to it too
					rec.Total = sinceNS(t0)
					end, _ := holdEnd(ctx, t0, w.Hold)
					holdUntil(ctx, end)
				}
				return err
			}
		}
		return holdOpen(ctx, c, t0, w.Hold, keepOnFIN, rec)
	})
}
