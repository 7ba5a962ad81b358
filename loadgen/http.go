package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/faultlab/faultlab/results"
)

// HTTP10 is the workload of a health checker or a short-lived client: connect, send
// "GET / HTTP/1.0", read the response to EOF (the server closes first, so the TIME_WAIT lands on the server),
// close. The response must have a "HTTP/1.x 200" status line and, when it has a Content-Length, a body of that
// length; anything else is a proto_error with the status (or what was wrong) in Detail.
type HTTP10 struct {
	// Host is the Host header; empty means the destination's "address:port".
	Host string
	// Path is the request's path; empty means "/".
	Path string
}

var _ Workload = HTTP10{}

// headMax is how much of a response is kept to check its status line and headers.
const headMax = 4 << 10

// httpBuf is what one attempt reads into: the head it checks, and a small scratch for the rest of a longer
// body (the lab's pages are under 1 KB). Kept small because a stall of the machine leaves thousands of
// attempts reading at once, each holding one.
type httpBuf struct {
	head    [headMax]byte
	scratch [1 << 10]byte
}

var httpBufs = sync.Pool{New: func() any { return new(httpBuf) }}

// Attempt runs one exchange and fills rec.
func (h HTTP10) Attempt(ctx context.Context, d *Dialer, dst netip.AddrPort, rec *results.Record) {
	t0 := IntendedTime(ctx)
	err := h.exchange(ctx, t0, d, dst, rec)
	rec.Total = sinceNS(t0)
	SetOutcome(rec, err)
}

func (h HTTP10) exchange(ctx context.Context, t0 time.Time, d *Dialer, dst netip.AddrPort, rec *results.Record) error {
	c, err := dialAttempt(ctx, t0, d, dst, rec)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := bindContext(ctx, c)
	defer stop()

	n, err := c.Write(h.request(dst))
	rec.BytesOut = int64(n)
	if err != nil {
		return ioError(ctx, results.PhaseWrite, err)
	}
	return readResponse(ctx, c, t0, rec)
}

func (h HTTP10) request(dst netip.AddrPort) []byte {
	host := h.Host
	if host == "" {
		host = dst.String()
	}
	path := h.Path
	if path == "" {
		path = "/"
	}
	return []byte("GET " + path + " HTTP/1.0\r\nHost: " + host + "\r\nUser-Agent: faultlab\r\n\r\n")
}

// readResponse reads to EOF, keeping the first headMax bytes, and checks the response.
func readResponse(ctx context.Context, c io.Reader, t0 time.Time, rec *results.Record) error {
	buf := httpBufs.Get().(*httpBuf)
	defer httpBufs.Put(buf)
	nHead := 0
	for {
		p := buf.scratch[:]
		if nHead < len(buf.head) {
			p = buf.head[nHead:]
		}
		n, err := c.Read(p)
		if n > 0 {
			if rec.BytesIn == 0 {
				rec.FirstByte = sinceNS(t0)
			}
			rec.BytesIn += int64(n)
			if nHead < len(buf.head) {
				nHead += n
			}
		}
		if err == io.EOF {
			return checkResponse(buf.head[:nHead], rec.BytesIn)
		}
		if err != nil {
			return ioError(ctx, results.PhaseRead, err)
		}
	}
}

// checkStatus checks that head starts with a "HTTP/1.x 200" status line.
func checkStatus(head []byte) error {
	line, _, _ := bytes.Cut(head, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if !bytes.HasPrefix(line, []byte("HTTP/1.")) || len(line) < 12 || line[8] != ' ' {
		return protoError("bad status line " + strconv.Quote(clip(line)))
	}
	if string(line[9:12]) != "200" {
		return protoError(printable(line))
	}
	return nil
}

// checkResponse checks a complete response of total bytes whose first bytes are head.
func checkResponse(head []byte, total int64) error {
	complete := total == int64(len(head)) // head holds the whole response
	if total == 0 {
		return protoError("empty response")
	}
	if _, _, found := bytes.Cut(head, []byte("\n")); !found && complete {
		return protoError(fmt.Sprintf("short response: %d bytes, no status line", total))
	}
	if err := checkStatus(head); err != nil {
		return err
	}
	bodyStart := headerEnd(head)
	if bodyStart < 0 {
		if complete {
			return protoError(fmt.Sprintf("short response: %d bytes, headers not terminated", total))
		}
		return nil // headers longer than headMax: not checked further
	}
	if cl, ok := contentLength(head[:bodyStart]); ok {
		if body := total - int64(bodyStart); body != cl {
			return protoError(fmt.Sprintf("body %d bytes, content-length %d", body, cl))
		}
	}
	return nil
}

func protoError(detail string) error {
	return &AttemptError{Phase: results.PhaseRead, Err: &ProtocolError{Detail: detail}}
}

// headerEnd is the offset of the body: just past the empty line ending the headers, -1 if not in b.
func headerEnd(b []byte) int {
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		if i > 0 && (j == 0 || j == 1 && b[i] == '\r') {
			return i + j + 1
		}
		i += j + 1
	}
	return -1
}

// contentLength finds the Content-Length header in the response head hdr (status line and headers).
func contentLength(hdr []byte) (int64, bool) {
	for _, l := range bytes.Split(hdr, []byte("\n"))[1:] {
		name, val, ok := bytes.Cut(l, []byte(":"))
		if !ok || !bytes.EqualFold(bytes.TrimSpace(name), []byte("content-length")) {
			continue
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(val)), 10, 64)
		return n, err == nil && n >= 0
	}
	return 0, false
}

// clip keeps at most 100 bytes of b for a record's Detail.
func clip(b []byte) string {
	const limit = 100
	if len(b) > limit {
		b = b[:limit]
	}
	return string(b)
}

// printable returns b clipped, quoted unless it is plain printable ASCII.
func printable(b []byte) string {
	s := clip(b)
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return strconv.Quote(s)
		}
	}
	return s
}
