package loadgen

import (
	"bufio"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/results"
)

func TestParseSizeMix(t *testing.T) {
	tests := []struct {
		name, in string
		want     []SizeShare
		err      string // substring; "" for none
	}{
		{"two", "70k:0.5, 1m:0.5", []SizeShare{{"70k", 0.5}, {"1m", 0.5}}, ""},
		{"single", "256k", []SizeShare{{"256k", 1}}, ""},
		{"thirds", "16k:0.333333,70k:0.333333,4m:0.333334", []SizeShare{{"16k", 0.333333}, {"70k", 0.333333},
			{"4m", 0.333334}}, ""},
		{"missing", "", nil, "missing"},
		{"sum", "70k:0.5,1m:0.4", nil, "the shares add up to 0.9, want 1"},
		{"no-share", "70k,1m:1", nil, "70k has no share"},
		{"bad-size", "70kb:1", nil, `size "70kb": want a number of bytes`},
		{"zero-size", "0:1", nil, `size "0"`},
		{"bad-share", "70k:x", nil, `share of 70k "x"`},
		{"zero-share", "70k:0,1m:1", nil, "want a number in (0, 1]"},
		{"twice", "70k:0.5,70k:0.5", nil, "70k is listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSizeMix(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseSizeMix(%q) = %v, %v, want an error containing %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("ParseSizeMix(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNewDownload(t *testing.T) {
	if _, err := newDownload(WorkloadConfig{}); err == nil || !strings.Contains(err.Error(), "option sizes: missing") {
		t.Errorf("no sizes: %v", err)
	}
	_, err := newDownload(WorkloadConfig{Options: map[string]string{"sizes": "1m", "size": "x"}})
	if err == nil || !strings.Contains(err.Error(), "unknown option(s) size (allowed: host, sizes)") {
		t.Errorf("unknown option: %v", err)
	}
}

// TestDownloadMix: the share of each file over 20,000 attempts is within 5 standard errors of its share
// (a false alarm for a fair draw has probability under 1e-6; splitmix64 is fixed, so this is deterministic).
func TestDownloadMix(t *testing.T) {
	d := Download{Sizes: []SizeShare{{"16k", 0.2}, {"70k", 0.3}, {"1m", 0.5}}}
	const n = 20000
	count := map[string]int{}
	for seq := range uint64(n) {
		count[d.Pick(seq)]++
	}
	for _, s := range d.Sizes {
		se := math.Sqrt(s.Share * (1 - s.Share) / n)
		if got := float64(count[s.Name]) / n; math.Abs(got-s.Share) > 5*se {
			t.Errorf("%s: %.4f of downloads, want %.2f +- %.4f", s.Name, got, s.Share, 5*se)
		}
	}
}

// TestDownload fetches files from a local server that serves /f/<size> slowly enough to separate the first
// byte from the end: each record has the right bytes, a first byte before the end, and the outcome.
func TestDownload(t *testing.T) {
	const size = 256 << 10
	dst := serve(t, func(c *net.TCPConn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		if req.URL.Path != "/f/256k" {
			fmt.Fprintf(c, "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
			return
		}
		fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n", size)
		time.Sleep(50 * time.Millisecond)
		c.Write(make([]byte, size))
	})
	tests := []struct {
		name    string
		sizes   []SizeShare
		outcome results.Outcome
	}{
		{"ok", []SizeShare{{"256k", 1}}, results.OutcomeOK},
		{"not-served", []SizeShare{{"70k", 1}}, results.OutcomeProtoError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec results.Record
			Download{Sizes: tt.sizes}.Attempt(t.Context(), &Dialer{Socket: LocalSocket}, dst, &rec)
			if rec.Outcome != tt.outcome {
				t.Fatalf("outcome %s (%s), want %s", rec.Outcome, rec.Detail, tt.outcome)
			}
			if tt.outcome != results.OutcomeOK {
				return
			}
			head := int64(len(fmt.Sprintf("HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n", size)))
			if rec.BytesIn != head+size || rec.FirstByte <= rec.Connect || rec.Total-rec.FirstByte < int64(40*time.Millisecond) {
				t.Errorf("bytes in %d (want %d), connect %d, first byte %d, total %d: want the body 50 ms after the "+
					"first byte", rec.BytesIn, head+size, rec.Connect, rec.FirstByte, rec.Total)
			}
		})
	}
}
