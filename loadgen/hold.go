package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/faultlab/faultlab/results"
)

// The holding workloads (idle, keepalive, halfclose, nofin) keep one connection open per attempt for a while,
// the way long-lived clients keep an old proxy process alive after a reload. They share this file: the hold
// itself, one HTTP/1.1 keep-alive exchange, and their options.

// ErrPeerClosed is the error of a holding attempt whose peer closed (FIN) the connection before the hold ended:
// the outcome results.OutcomeClosed.
var ErrPeerClosed = errors.New("closed by the peer before the hold ended")

// onFIN is what a holding client does when the peer's FIN arrives.
type onFIN int

const (
	closeOnFIN onFIN = iota // close at once, as a well-behaved client does
	keepOnFIN               // keep the socket open until the hold ends: the peer stays in FIN_WAIT2
)

// holdEnd is when the hold of an attempt intended at t0 ends: t0+hold, or the attempt's deadline when hold is 0.
// late says the deadline comes before t0+hold (the scenario's timeout is shorter than the hold).
func holdEnd(ctx context.Context, t0 time.Time, hold time.Duration) (end time.Time, late bool) {
	dl, bounded := ctx.Deadline()
	if hold == 0 {
		return dl, false // bounded: Run always gives attempts a deadline; unbounded: hold forever (zero time)
	}
	end = t0.Add(hold)
	return end, bounded && dl.Before(end)
}

// holdOpen keeps c open until the hold ends, reading whatever comes (counted into rec.BytesIn). It returns nil
// when the hold ended with the connection open, ErrPeerClosed (phase read) when the peer's FIN came first (with
// keepOnFIN, only once the hold has ended, the socket kept open until then), the read error when it failed
// (a reset), and a timeout when the attempt's deadline came before the hold's end. rec.Total is set to when the
// connection ended for the client: the FIN, the error or the hold's end.
func holdOpen(ctx context.Context, c *Conn, t0 time.Time, hold time.Duration, fin onFIN, rec *results.Record) error {
	end, late := holdEnd(ctx, t0, hold)
	stop := bindContext(ctx, c)
	defer stop()
	if !late {
		c.SetReadDeadline(end)
	}
	var b [512]byte
	for {
		n, err := c.Read(b[:])
		rec.BytesIn += int64(n)
		switch {
		case err == nil:
			continue
		case err == io.EOF:
			rec.Total = sinceNS(t0)
			if fin == keepOnFIN {
				holdUntil(ctx, end)
			}
			return attemptError(results.PhaseRead, ErrPeerClosed)
		case errors.Is(err, os.ErrDeadlineExceeded) && !late && !errors.Is(ctx.Err(), context.Canceled):
			rec.Total = sinceNS(t0)
			return nil // the hold ended with the connection open
		}
		rec.Total = sinceNS(t0)
		return ioError(ctx, results.PhaseRead, err)
	}
}

// holdUntil waits until t or until ctx ends.
func holdUntil(ctx context.Context, t time.Time) {
	if t.IsZero() {
		<-ctx.Done()
		return
	}
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

// holdAttempt runs exchange and records its outcome; a holding exchange sets rec.Total itself when the
// connection ended for the client, otherwise it is the time exchange returned.
func holdAttempt(ctx context.Context, rec *results.Record, exchange func(t0 time.Time) error) {
	t0 := IntendedTime(ctx)
	err := exchange(t0)
	if rec.Total == 0 {
		rec.Total = sinceNS(t0)
	}
	SetOutcome(rec, err)
}

// keepAliveRequest is one HTTP/1.1 request that asks to keep the connection open.
func keepAliveRequest(host string) []byte {
	return []byte("GET / HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: faultlab\r\nConnection: keep-alive\r\n\r\n")
}

// readOne reads exactly one HTTP/1.x response (its head and a body of Content-Length bytes, without waiting for
// the server's FIN) and checks its status. A response without Content-Length is read to EOF, which then ends
// the exchange.
func readOne(ctx context.Context, c io.Reader, t0 time.Time, rec *results.Record) error {
	buf := httpBufs.Get().(*httpBuf)
	defer httpBufs.Put(buf)
	n, bodyStart, err := readHeadOnly(ctx, c, buf.head[:], t0, rec)
	if err != nil {
		return err
	}
	if err := checkStatus(buf.head[:n]); err != nil {
		return err
	}
	cl, ok := contentLength(buf.head[:bodyStart])
	if !ok {
		return readResponseRest(ctx, c, buf.scratch[:], rec)
	}
	for have := int64(n - bodyStart); have < cl; {
		m, err := c.Read(buf.scratch[:min(int64(len(buf.scratch)), cl-have)])
		have += int64(m)
		rec.BytesIn += int64(m)
		if err == io.EOF && have < cl {
			return protoError(fmt.Sprintf("body %d bytes, content-length %d", have, cl))
		}
		if err != nil && err != io.EOF {
			return ioError(ctx, results.PhaseRead, err)
		}
	}
	return nil
}

// readHeadOnly reads into head until the response head is complete; it returns the bytes read and where the body
// starts.
func readHeadOnly(ctx context.Context, c io.Reader, head []byte, t0 time.Time, rec *results.Record) (int, int, error) {
	n := 0
	for {
		if n == len(head) {
			return n, 0, protoError("response head longer than " + strconv.Itoa(len(head)) + " bytes")
		}
		m, err := c.Read(head[n:])
		if m > 0 && rec.BytesIn == 0 {
			rec.FirstByte = sinceNS(t0)
		}
		n += m
		rec.BytesIn += int64(m)
		if end := bytes.Index(head[:n], []byte("\r\n\r\n")); end >= 0 {
			return n, end + 4, nil
		}
		if err == io.EOF {
			return n, 0, checkResponse(head[:n], int64(n))
		}
		if err != nil {
			return n, 0, ioError(ctx, results.PhaseRead, err)
		}
	}
}

// readResponseRest reads the rest of a response without Content-Length to EOF: the server closed, so the
// connection the client meant to keep is gone.
func readResponseRest(ctx context.Context, c io.Reader, scratch []byte, rec *results.Record) error {
	for {
		m, err := c.Read(scratch)
		rec.BytesIn += int64(m)
		if err == io.EOF {
			return attemptError(results.PhaseRead, ErrPeerClosed)
		}
		if err != nil {
			return ioError(ctx, results.PhaseRead, err)
		}
	}
}

// holdOptions are the options the holding workloads share: hold (a Go duration, default: until the attempt's
// timeout) and, for some, request (none or http) and host.
type holdOptions struct {
	Hold    time.Duration
	Request bool
	Host    string
}

// parseHoldOptions checks opts against allowed and parses them for kind.
func parseHoldOptions(kind string, cfg WorkloadConfig, allowed ...string) (holdOptions, error) {
	var o holdOptions
	if err := checkWorkloadOptions(kind, cfg.Options, allowed...); err != nil {
		return o, err
	}
	if cfg.Persistent != 0 {
		return o, fmt.Errorf("%s: persistent %d: each attempt holds its own connection", kind, cfg.Persistent)
	}
	var errs []error
	if v, ok := cfg.Options["hold"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: option hold %q: want a positive duration such as 20s "+
				"(leave it out to hold until the attempt's timeout)", kind, v))
		}
		o.Hold = d
	}
	switch v := cfg.Options["request"]; v {
	case "", "none":
	case "http":
		o.Request = true
	default:
		errs = append(errs, fmt.Errorf("%s: option request %q: want none (send nothing) or http "+
			"(one HTTP request first)", kind, v))
	}
	o.Host = cfg.Options["host"]
	return o, errors.Join(errs...)
}
