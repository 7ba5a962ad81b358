package loadgen

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/results"
)

const keepAliveResponse = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n"

// stay reads (and answers a keep-alive request when one comes) until the client closes.
func stay(c *net.TCPConn) {
	buf := make([]byte, 1024)
	for {
		n, err := c.Read(buf)
		if strings.Contains(string(buf[:n]), "\r\n\r\n") {
			io.WriteString(c, keepAliveResponse)
		}
		if err != nil {
			return
		}
	}
}

// closeAfter answers a request if one comes within d, then closes (a FIN).
func closeAfter(d time.Duration, resp string) func(*net.TCPConn) {
	return func(c *net.TCPConn) {
		deadline := time.Now().Add(d)
		c.SetReadDeadline(deadline)
		if readRequest(c) == nil {
			io.WriteString(c, resp)
		}
		time.Sleep(time.Until(deadline))
	}
}

// resetAfter closes with an RST after d.
func resetAfter(d time.Duration) func(*net.TCPConn) {
	return func(c *net.TCPConn) {
		time.Sleep(d)
		c.SetLinger(0)
	}
}

// answerFIN reads to the client's FIN, then closes: the well-behaved peer of a half-closing client.
func answerFIN(c *net.TCPConn) { stay(c) }

// ignoreFIN reads to the client's FIN and keeps its own side open for a second.
func ignoreFIN(c *net.TCPConn) {
	io.Copy(io.Discard, c)
	time.Sleep(time.Second)
}

func TestHoldingWorkloads(t *testing.T) {
	const hold = 300 * time.Millisecond
	tests := []struct {
		name    string
		w       Workload
		handle  func(*net.TCPConn)
		outcome results.Outcome
		total   [2]time.Duration // the record's Total is within
	}{
		{"idle_held", Idle{Hold: hold}, stay, results.OutcomeOK, [2]time.Duration{hold, 2 * hold}},
		{"idle_cut", Idle{Hold: hold}, closeAfter(50*time.Millisecond, ""), results.OutcomeClosed,
			[2]time.Duration{50 * time.Millisecond, hold}},
		{"idle_reset", Idle{Hold: hold}, resetAfter(50 * time.Millisecond), results.OutcomeReset,
			[2]time.Duration{50 * time.Millisecond, hold}},
		{"keepalive_held", KeepAlive{Hold: hold}, stay, results.OutcomeOK, [2]time.Duration{hold, 2 * hold}},
		{"keepalive_server_closes", KeepAlive{Hold: hold}, respond(okResponse), results.OutcomeClosed,
			[2]time.Duration{0, hold}},
		{"keepalive_proxy_cut", KeepAlive{Hold: hold}, closeAfter(50*time.Millisecond, keepAliveResponse),
			results.OutcomeClosed, [2]time.Duration{50 * time.Millisecond, hold}},
		{"nofin_held", NoFIN{Hold: hold}, stay, results.OutcomeOK, [2]time.Duration{hold, 2 * hold}},
		{"nofin_cut", NoFIN{Hold: hold, Request: true}, closeAfter(50*time.Millisecond, keepAliveResponse),
			results.OutcomeClosed, [2]time.Duration{50 * time.Millisecond, hold}},
		{"halfclose_answered", HalfClose{Hold: hold}, answerFIN, results.OutcomeOK, [2]time.Duration{0, hold}},
		{"halfclose_request", HalfClose{Hold: hold, Request: true}, answerFIN, results.OutcomeOK,
			[2]time.Duration{0, hold}},
		{"halfclose_unanswered", HalfClose{Hold: hold}, ignoreFIN, results.OutcomeTimeout,
			[2]time.Duration{hold, 2 * hold}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := serve(t, tt.handle)
			rec := runHold(t, tt.w, dst)
			total := time.Duration(rec.Total)
			if rec.Outcome != tt.outcome || total < tt.total[0] || total > tt.total[1] {
				t.Fatalf("%s/%s %q total %s, want %s with total in [%s, %s]", rec.Outcome, rec.Phase, rec.Detail,
					total, tt.outcome, tt.total[0], tt.total[1])
			}
			if rec.Connect <= 0 || rec.LocalPort == 0 {
				t.Errorf("connect %d local port %d", rec.Connect, rec.LocalPort)
			}
		})
	}
}

func runHold(t *testing.T, w Workload, dst netip.AddrPort) results.Record {
	t.Helper()
	intended := time.Now()
	ctx, cancel := context.WithDeadline(t.Context(), intended.Add(5*time.Second))
	defer cancel()
	var rec results.Record
	w.Attempt(WithIntended(ctx, intended), &Dialer{Socket: LocalSocket}, dst, &rec)
	return rec
}

// TestNoFINKeepsSocket checks that a nofin client leaves the peer in FIN_WAIT2 for the whole hold: the peer
// half-closes at once and sees the client's FIN only when the hold ends.
func TestNoFINKeepsSocket(t *testing.T) {
	const hold = 400 * time.Millisecond
	finSeen := make(chan time.Time, 1)
	dst := serve(t, func(c *net.TCPConn) {
		c.CloseWrite()
		io.Copy(io.Discard, c)
		finSeen <- time.Now()
	})
	start := time.Now()
	rec := runHold(t, NoFIN{Hold: hold}, dst)
	if rec.Outcome != results.OutcomeClosed || time.Duration(rec.Total) > hold/2 {
		t.Fatalf("%s total %s, want closed soon after connect", rec.Outcome, time.Duration(rec.Total))
	}
	if got := (<-finSeen).Sub(start); got < hold {
		t.Errorf("peer saw the client's FIN after %s, want after the hold (%s)", got, hold)
	}
}

// TestHoldUntilTimeout: without hold, the hold lasts until the attempt's deadline and ends ok.
func TestHoldUntilTimeout(t *testing.T) {
	dst := serve(t, stay)
	intended := time.Now()
	ctx, cancel := context.WithDeadline(t.Context(), intended.Add(200*time.Millisecond))
	defer cancel()
	var rec results.Record
	Idle{}.Attempt(WithIntended(ctx, intended), &Dialer{Socket: LocalSocket}, dst, &rec)
	if rec.Outcome != results.OutcomeOK || time.Duration(rec.Total) < 200*time.Millisecond {
		t.Fatalf("%s %q total %s", rec.Outcome, rec.Detail, time.Duration(rec.Total))
	}
	// A hold longer than the attempt's timeout is a timeout, not a success.
	ctx2, cancel2 := context.WithDeadline(t.Context(), time.Now().Add(100*time.Millisecond))
	defer cancel2()
	rec = results.Record{}
	Idle{Hold: time.Second}.Attempt(WithIntended(ctx2, time.Now()), &Dialer{Socket: LocalSocket}, dst, &rec)
	if rec.Outcome != results.OutcomeTimeout {
		t.Fatalf("hold past the deadline: %s %q", rec.Outcome, rec.Detail)
	}
}

func TestHoldingOptions(t *testing.T) {
	tests := []struct {
		kind string
		cfg  WorkloadConfig
		want string
	}{
		{"idle", WorkloadConfig{Options: map[string]string{"hold": "ten"}}, `idle: option hold "ten": want a positive duration`},
		{"idle", WorkloadConfig{Options: map[string]string{"hold": "-1s"}}, `idle: option hold "-1s"`},
		{"idle", WorkloadConfig{Options: map[string]string{"request": "http"}}, "idle: unknown option(s) request (allowed: hold)"},
		{"nofin", WorkloadConfig{Options: map[string]string{"request": "maybe"}}, `nofin: option request "maybe": want none`},
		{"halfclose", WorkloadConfig{Persistent: 3}, "halfclose: persistent 3"},
		{"keepalive", WorkloadConfig{Options: map[string]string{"hold": "1x"}}, `keepalive: option hold "1x"`},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"_"+strings.Fields(tt.want)[1], func(t *testing.T) {
			w, err := Workloads[tt.kind].New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) || w != nil {
				t.Errorf("New: %v, %v; want an error containing %q", w, err, tt.want)
			}
		})
	}
	w, err := Workloads["nofin"].New(WorkloadConfig{Options: map[string]string{"hold": "20s", "request": "http",
		"host": "h"}})
	if err != nil || w != (NoFIN{Hold: 20 * time.Second, Request: true, Host: "h"}) {
		t.Errorf("nofin: %#v, %v", w, err)
	}
}
