package loadgen

import (
	"cmp"
	"context"
	"net/netip"
	"time"

	"github.com/faultlab/faultlab/results"
)

// KeepAlive is an HTTP/1.1 keep-alive client that sends one request, reads its response and then stays idle
// on the connection for Hold (0: until the attempt's timeout), as a browser or a connection pool does. It
// closes at once when the peer's FIN comes: the proxy (a soft-stopping one closes idle keep-alive connections)
// or the server closed the connection (outcome closed, Total the time of the FIN).
type KeepAlive struct {
	Hold time.Duration
	// Host is the Host header; empty means the destination's "address:port".
	Host string
}

var _ Workload = KeepAlive{}

func newKeepAlive(cfg WorkloadConfig) (Workload, error) {
	o, err := parseHoldOptions("keepalive", cfg, "hold", "host")
	if err != nil {
		return nil, err
	}
	return KeepAlive{Hold: o.Hold, Host: o.Host}, nil
}

// Attempt connects, runs one exchange and holds the connection.
func (w KeepAlive) Attempt(ctx context.Context, d *Dialer, dst netip.AddrPort, rec *results.Record) {
	holdAttempt(ctx, rec, func(t0 time.Time) error {
		c, err := dialAttempt(ctx, t0, d, dst, rec)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := exchangeOne(ctx, c, t0, cmp.Or(w.Host, dst.String()), rec); err != nil {
			return err
		}
		return holdOpen(ctx, c, t0, w.Hold, closeOnFIN, rec)
	})
}

// exchangeOne sends one keep-alive request on c and reads its response.
func exchangeOne(ctx context.Context, c *Conn, t0 time.Time, host string, rec *results.Record) error {
	stop := bindContext(ctx, c)
	defer stop()
	n, err := c.Write(keepAliveRequest(host))
	rec.BytesOut += int64(n)
	if err != nil {
		return ioError(ctx, results.PhaseWrite, err)
	}
	return readOne(ctx, c, t0, rec)
}
