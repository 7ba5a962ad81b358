package loadgen

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/results"
)

// TestHTTP10Outcomes drives one HTTP10 attempt against loopback servers that misbehave in each way.
func TestHTTP10Outcomes(t *testing.T) {
	tests := []struct {
		name    string
		dst     func(t *testing.T) netip.AddrPort
		outcome results.Outcome
		phase   results.Phase
		errno   string
		detail  string // substring of Detail
	}{
		{"ok", server(respond(okResponse)), results.OutcomeOK, results.PhaseDone, "", ""},
		{"ok_no_length", server(respond("HTTP/1.1 200 OK\r\n\r\nbody")), results.OutcomeOK, results.PhaseDone, "", ""},
		{"refused", closedPort, results.OutcomeRefused, results.PhaseConnect, "ECONNREFUSED", ""},
		{"reset", server(resetAfterRequest), results.OutcomeReset, results.PhaseRead, "ECONNRESET", ""},
		{"timeout_read", server(neverRespond), results.OutcomeTimeout, results.PhaseRead, "", ""},
		{"timeout_connect", fullBacklog, results.OutcomeTimeout, results.PhaseConnect, "", ""},
		{"garbage", server(respond("garbage\r\n\r\n")), results.OutcomeProtoError, results.PhaseRead, "", "bad status line"},
		{"status_503", server(respond("HTTP/1.0 503 Service Unavailable\r\n\r\n")),
			results.OutcomeProtoError, results.PhaseRead, "", "HTTP/1.0 503 Service Unavailable"},
		{"empty", server(respond("")), results.OutcomeProtoError, results.PhaseRead, "", "empty response"},
		{"short_body", server(respond("HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nabc")),
			results.OutcomeProtoError, results.PhaseRead, "", "body 3 bytes, content-length 10"},
		{"truncated_headers", server(respond("HTTP/1.0 200 OK\r\nServer: x")),
			results.OutcomeProtoError, results.PhaseRead, "", "headers not terminated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := tt.dst(t)
			intended := time.Now()
			timeout := 10 * time.Second // generous: a loaded machine must not turn successes into timeouts
			if tt.outcome == results.OutcomeTimeout {
				timeout = 300 * time.Millisecond
			}
			ctx, cancel := context.WithDeadline(t.Context(), intended.Add(timeout))
			defer cancel()
			var rec results.Record
			HTTP10{}.Attempt(WithIntended(ctx, intended), &Dialer{Socket: LocalSocket}, dst, &rec)
			if rec.Outcome != tt.outcome || rec.Phase != tt.phase || rec.Errno != tt.errno ||
				!strings.Contains(rec.Detail, tt.detail) {
				t.Fatalf("got %s/%s/%q detail %q, want %s/%s/%q detail ~%q", rec.Outcome, rec.Phase, rec.Errno,
					rec.Detail, tt.outcome, tt.phase, tt.errno, tt.detail)
			}
			checkTimes(t, &rec)
			t.Logf("%s/%s %s %q", rec.Outcome, rec.Phase, rec.Errno, rec.Detail)
		})
	}
}

// checkTimes checks that milestones are ordered and the byte counts match the phase reached.
func checkTimes(t *testing.T, rec *results.Record) {
	t.Helper()
	if rec.Total <= 0 {
		t.Errorf("total %d", rec.Total)
	}
	if rec.Phase == results.PhaseConnect {
		if rec.Connect != 0 || rec.BytesOut != 0 {
			t.Errorf("failed connect with connect=%d bytes_out=%d", rec.Connect, rec.BytesOut)
		}
		return
	}
	if rec.Connect <= 0 || rec.Connect > rec.Total || rec.LocalPort == 0 {
		t.Errorf("connect %d total %d local port %d", rec.Connect, rec.Total, rec.LocalPort)
	}
	if want := int64(len(HTTP10{}.request(netip.MustParseAddrPort("127.0.0.1:1")))); rec.BytesOut < want-5 {
		t.Errorf("bytes out %d", rec.BytesOut)
	}
	if (rec.BytesIn > 0) != (rec.FirstByte > 0) || rec.FirstByte > rec.Total ||
		(rec.FirstByte > 0 && rec.FirstByte < rec.Connect) {
		t.Errorf("first byte %d with %d bytes in, connect %d, total %d", rec.FirstByte, rec.BytesIn, rec.Connect, rec.Total)
	}
	if rec.Outcome == results.OutcomeOK && rec.BytesIn != int64(len(okResponse)) && rec.BytesIn != 23 {
		t.Errorf("bytes in %d", rec.BytesIn)
	}
}

func server(handle func(*net.TCPConn)) func(t *testing.T) netip.AddrPort {
	return func(t *testing.T) netip.AddrPort { return serve(t, handle) }
}

// TestHTTP10Host checks the request sent on the wire.
func TestHTTP10Host(t *testing.T) {
	got := make(chan string, 1)
	dst := serve(t, func(c *net.TCPConn) {
		buf := make([]byte, 512)
		n, _ := c.Read(buf)
		got <- string(buf[:n])
		c.Write([]byte(okResponse))
	})
	var rec results.Record
	HTTP10{}.Attempt(t.Context(), &Dialer{Socket: LocalSocket}, dst, &rec)
	want := "GET / HTTP/1.0\r\nHost: " + dst.String() + "\r\nUser-Agent: faultlab\r\n\r\n"
	if req := <-got; req != want || rec.BytesOut != int64(len(want)) || rec.Outcome != results.OutcomeOK {
		t.Errorf("request %q (%d bytes out, %s), want %q", req, rec.BytesOut, rec.Outcome, want)
	}
}

func TestCheckResponse(t *testing.T) {
	long := "HTTP/1.0 200 OK\r\nX: " + strings.Repeat("a", headMax) + "\r\n\r\n"
	tests := []struct {
		name, resp string
		total      int64 // 0: len(resp)
		detail     string
	}{
		{"ok", okResponse, 0, ""},
		{"lf_only", "HTTP/1.0 200 OK\n\n", 0, ""},
		{"long_headers", long[:headMax], int64(len(long)), ""},
		{"http2", "HTTP/2 200\r\n\r\n", 0, "bad status line"},
		{"no_code", "HTTP/1.0\r\n\r\n", 0, "bad status line"},
		{"binary", "HTTP/1.0 404 \x00\xff\r\n\r\n", 0, `"HTTP/1.0 404 \x00\xff"`},
		{"long_body", "HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\nab", 0, "body 2 bytes, content-length 1"},
		{"partial_line", "HTTP/1.0 2", 0, "no status line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			total := tt.total
			if total == 0 {
				total = int64(len(tt.resp))
			}
			var rec results.Record
			SetOutcome(&rec, checkResponse([]byte(tt.resp), total))
			if tt.detail == "" && rec.Outcome != results.OutcomeOK || !strings.Contains(rec.Detail, tt.detail) {
				t.Errorf("got %s %q, want detail ~%q", rec.Outcome, rec.Detail, tt.detail)
			}
		})
	}
}
