package loadgen

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/results"
)

// headResponse is nginx's answer to HEAD / HTTP/1.0: a Content-Length and no body.
const headResponse = "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n" +
	"Connection: close\r\n\r\n"

// TestCheckWhoClosesFirst: with close: response the checker closes as soon as the head is in, before a
// server that lingers closes (the server reads EOF: the checker's FIN came first, so the checker keeps the
// TIME_WAIT); with close: eof it waits for the server's FIN (the server's read times out, then the server
// closes first). Both checks succeed.
func TestCheckWhoClosesFirst(t *testing.T) {
	for _, tt := range []struct {
		close            CheckClose
		serverSawEOF     bool
		wantCheckerFirst bool
	}{
		{CloseOnResponse, true, true},
		{CloseOnEOF, false, false},
	} {
		t.Run(string(tt.close), func(t *testing.T) {
			saw := make(chan error, 1)
			dst := serve(t, func(c *net.TCPConn) {
				if readRequest(c) != nil {
					saw <- errors.New("no request")
					return
				}
				io.WriteString(c, headResponse)
				// Linger before closing: a checker that waits for our FIN is still there after 300 ms.
				c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				_, err := c.Read(make([]byte, 1))
				saw <- err
			})
			var rec results.Record
			Check{Close: tt.close}.Attempt(t.Context(), &Dialer{Socket: LocalSocket}, dst, &rec)
			if rec.Outcome != results.OutcomeOK || rec.BytesIn != int64(len(headResponse)) ||
				rec.BytesOut != int64(len(checkRequest)) {
				t.Fatalf("check: %s %q, %d bytes in, %d out", rec.Outcome, rec.Detail, rec.BytesIn, rec.BytesOut)
			}
			err := <-saw
			if gotEOF := err == io.EOF; gotEOF != tt.serverSawEOF {
				t.Errorf("server's read after the response: %v; want EOF (the checker closed first): %v", err,
					tt.wantCheckerFirst)
			}
			if !tt.serverSawEOF && !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("server's read: %v, want its deadline (the checker waited)", err)
			}
		})
	}
}

func TestCheckOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		close   CheckClose
		resp    string
		outcome results.Outcome
		detail  string
	}{
		{"ok_response", CloseOnResponse, headResponse, results.OutcomeOK, ""},
		{"ok_eof", CloseOnEOF, headResponse, results.OutcomeOK, ""},
		{"status_503", CloseOnResponse, "HTTP/1.0 503 Service Unavailable\r\n\r\n", results.OutcomeProtoError,
			"HTTP/1.0 503 Service Unavailable"},
		{"empty", CloseOnResponse, "", results.OutcomeProtoError, "empty response"},
		{"truncated", CloseOnResponse, "HTTP/1.0 200 OK\r\nServer: x", results.OutcomeProtoError,
			"headers not terminated"},
		{"body_after_head", CloseOnEOF, headResponse + "ok\n", results.OutcomeProtoError,
			"bytes after the head of a HEAD response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := serve(t, respond(tt.resp))
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			var rec results.Record
			Check{Close: tt.close}.Attempt(ctx, &Dialer{Socket: LocalSocket}, dst, &rec)
			if rec.Outcome != tt.outcome || !strings.Contains(rec.Detail, tt.detail) {
				t.Fatalf("got %s %q, want %s ~%q", rec.Outcome, rec.Detail, tt.outcome, tt.detail)
			}
		})
	}
}

func TestCheckOptions(t *testing.T) {
	e, err := LookupWorkload("check")
	if err != nil {
		t.Fatal(err)
	}
	if w, err := e.New(WorkloadConfig{}); err != nil || w.(Check).Close != CloseOnResponse {
		t.Errorf("default: %#v %v, want close on response", w, err)
	}
	if w, err := e.New(WorkloadConfig{Options: map[string]string{"close": "eof"}}); err != nil ||
		w.(Check).Close != CloseOnEOF {
		t.Errorf("close: eof: %#v %v", w, err)
	}
	for _, bad := range []WorkloadConfig{{Options: map[string]string{"close": "never"}},
		{Options: map[string]string{"keepalive": "1"}}, {Persistent: 2}} {
		if _, err := e.New(bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}
