package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/faultlab/faultlab/results"
)

// Check is an active health check as a proxy's checker sends it: connect, "HEAD / HTTP/1.0", read the
// response, close. It models the two ways a checker can end the connection, which decide which side keeps
// the TIME_WAIT (seeds/001):
//   - CloseOnResponse (Tengine's check module with check_keepalive_requests 1): close as soon as the response
//     head is complete. The server (HTTP/1.0) closes right after sending it; if the server's FIN has not yet
//     been processed by the checker's kernel when close() runs, the checker closes first and keeps the
//     TIME_WAIT. The seed expects the checker to lose that race more often the further away the server is;
//     the health-check scenario measures whether it does.
//   - CloseOnEOF (check_keepalive_requests > 1): wait for the server's FIN (read to EOF), then close: the
//     server always closed first, and the TIME_WAIT stays on the server.
type Check struct {
	Close CheckClose
}

// CheckClose is when a Check closes its connection.
type CheckClose string

const (
	CloseOnResponse CheckClose = "response"
	CloseOnEOF      CheckClose = "eof"
)

var _ Workload = Check{}

var checkRequest = []byte("HEAD / HTTP/1.0\r\n\r\n")

func newCheck(cfg WorkloadConfig) (Workload, error) {
	if err := checkWorkloadOptions("check", cfg.Options, "close"); err != nil {
		return nil, err
	}
	if cfg.Persistent != 0 {
		return nil, fmt.Errorf("check: persistent %d: a check is one HTTP/1.0 exchange per connection",
			cfg.Persistent)
	}
	c := Check{Close: CloseOnResponse}
	switch v := CheckClose(cfg.Options["close"]); v {
	case "":
	case CloseOnResponse, CloseOnEOF:
		c.Close = v
	default:
		return nil, fmt.Errorf("check: option close %q: want %s (close once the response is in) or %s "+
			"(wait for the server's FIN)", v, CloseOnResponse, CloseOnEOF)
	}
	return c, nil
}

// Attempt runs one check and fills rec.
func (k Check) Attempt(ctx context.Context, d *Dialer, dst netip.AddrPort, rec *results.Record) {
	t0 := IntendedTime(ctx)
	err := k.exchange(ctx, t0, d, dst, rec)
	rec.Total = sinceNS(t0)
	SetOutcome(rec, err)
}

func (k Check) exchange(ctx context.Context, t0 time.Time, d *Dialer, dst netip.AddrPort, rec *results.Record) error {
	c, err := dialAttempt(ctx, t0, d, dst, rec)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := bindContext(ctx, c)
	defer stop()
	n, err := c.Write(checkRequest)
	rec.BytesOut = int64(n)
	if err != nil {
		return ioError(ctx, results.PhaseWrite, err)
	}
	if err := readHead(ctx, c, t0, rec); err != nil || k.Close == CloseOnResponse {
		return err
	}
	// Wait for the server's FIN: a HEAD response has no body, so anything more is a protocol error.
	var b [64]byte
	for {
		n, err := c.Read(b[:])
		if n > 0 {
			rec.BytesIn += int64(n)
			return protoError(fmt.Sprintf("%d bytes after the head of a HEAD response", n))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return ioError(ctx, results.PhaseRead, err)
		}
	}
}

// readHead reads until the response head is complete (a HEAD response has no body, whatever its
// Content-Length says) and checks its status line, without waiting for the server's FIN.
func readHead(ctx context.Context, c io.Reader, t0 time.Time, rec *results.Record) error {
	buf := httpBufs.Get().(*httpBuf)
	defer httpBufs.Put(buf)
	n, bodyStart, err := readHeadOnly(ctx, c, buf.head[:], t0, rec)
	if err != nil {
		return err
	}
	if extra := n - bodyStart; extra > 0 {
		return protoError(fmt.Sprintf("%d bytes after the head of a HEAD response", extra))
	}
	return checkStatus(buf.head[:n])
}
