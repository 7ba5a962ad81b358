package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faultlab/faultlab/results"
)

// fakeWorkload records an outcome without touching the network, optionally after a delay.
type fakeWorkload struct {
	delay   time.Duration
	outcome results.Outcome
}

func (f fakeWorkload) Attempt(ctx context.Context, _ *Dialer, _ netip.AddrPort, rec *results.Record) {
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
		}
	}
	rec.Outcome = f.outcome
	if rec.Outcome == "" {
		rec.Outcome = results.OutcomeOK
	}
	rec.Total = sinceNS(IntendedTime(ctx))
}

// collector is a sink that keeps the records.
type collector struct {
	mu   sync.Mutex
	recs []*results.Record
}

func (c *collector) sink(r *results.Record) {
	c.mu.Lock()
	c.recs = append(c.recs, r)
	c.mu.Unlock()
}

// bySeq returns the records indexed by Seq, failing on duplicates or gaps.
func (c *collector) bySeq(t *testing.T) []*results.Record {
	t.Helper()
	out := make([]*results.Record, len(c.recs))
	for _, r := range c.recs {
		if r.Seq >= uint64(len(out)) || out[r.Seq] != nil {
			t.Fatalf("seq %d duplicated or out of range among %d records", r.Seq, len(out))
		}
		out[r.Seq] = r
	}
	return out
}

var fakeTarget = netip.MustParseAddrPort("127.0.0.1:9")

func TestRunRate(t *testing.T) {
	tests := []struct {
		rate float64
		dur  time.Duration
		want int
	}{
		{1000, 500 * time.Millisecond, 500},
		{333.3, 1500 * time.Millisecond, 500},
		{7, time.Second, 7},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("rate%g", tt.rate), func(t *testing.T) {
			t.Parallel()
			var c collector
			cfg := Config{Cell: "c", Rep: 2, Rate: tt.rate, Duration: tt.dur, Target: fakeTarget}
			s, err := Run(t.Context(), cfg, fakeWorkload{}, &Dialer{Socket: LocalSocket}, c.sink)
			if err != nil {
				t.Fatal(err)
			}
			recs := c.bySeq(t)
			if len(recs) != tt.want || s.Launched != int64(tt.want) || s.OK != int64(tt.want) {
				t.Fatalf("%d records, summary %+v; want %d", len(recs), s, tt.want)
			}
			for i, r := range recs {
				if want := scheduleOffset(uint64(i), tt.rate).Nanoseconds(); r.Intended != want {
					t.Fatalf("record %d intended %d, want %d", i, r.Intended, want)
				}
				if r.Start < r.Intended || r.Cell != "c" || r.Rep != 2 {
					t.Fatalf("record %+v", r)
				}
			}
			// Only an upper bound: on a loaded machine attempts start late and fall out of the window.
			if s.Window != tt.dur || s.Achieved <= 0 || s.Achieved > 1.01*tt.rate {
				t.Errorf("window %s achieved %.1f/s for %g/s", s.Window, s.Achieved, tt.rate)
			}
		})
	}
}

// TestRunLoopback runs HTTP10 against a loopback server: every attempt succeeds and is recorded once.
func TestRunLoopback(t *testing.T) {
	dst := serve(t, respond(okResponse))
	var c collector
	var stats Stats
	epoch := time.Now().Add(100 * time.Millisecond)
	cfg := Config{Cell: "loop", Rate: 500, Duration: 400 * time.Millisecond, Warmup: 100 * time.Millisecond,
		Timeout: 10 * time.Second, Target: dst, Epoch: epoch, Stats: &stats}
	done := make(chan struct{})
	polled := make(chan int)
	go func() { // a progress bar reading the counters during the run
		n := 0
		for {
			select {
			case <-done:
				polled <- n
				return
			case <-time.After(10 * time.Millisecond):
				if snap := stats.Snapshot(); snap.Done > snap.Launched || snap.OK+snap.Failed > snap.Launched {
					t.Errorf("inconsistent snapshot %+v", snap)
				}
				n++
			}
		}
	}()
	s, err := Run(t.Context(), cfg, HTTP10{}, &Dialer{Socket: LocalSocket}, c.sink)
	close(done)
	if n := <-polled; n == 0 {
		t.Error("stats never polled")
	}
	if err != nil {
		t.Fatal(err)
	}
	recs := c.bySeq(t)
	if len(recs) != 200 || s.OK != 200 || s.Outcomes[results.OutcomeOK] != 200 || !s.Epoch.Equal(epoch) {
		t.Fatalf("%d records, summary %+v", len(recs), s)
	}
	for _, r := range recs {
		checkTimes(t, r)
	}
	if snap := stats.Snapshot(); snap.Done != 200 || snap.OK != 200 || snap.InFlight != 0 || snap.MaxLag != s.LagMax {
		t.Errorf("stats %+v, summary %+v", snap, s)
	}
	t.Logf("achieved %.1f/s, lag p50 %s p99 %s max %s", s.Achieved, s.LagP50, s.LagP99, s.LagMax)
}

func TestRunOutcomes(t *testing.T) {
	var c collector
	cfg := Config{Rate: 200, Duration: 100 * time.Millisecond, Timeout: 10 * time.Second, Target: closedPort(t)}
	s, err := Run(t.Context(), cfg, HTTP10{}, &Dialer{Socket: LocalSocket}, c.sink)
	if err != nil {
		t.Fatal(err)
	}
	if s.Failed != 20 || s.Outcomes[results.OutcomeRefused] != 20 || len(c.recs) != 20 {
		t.Fatalf("summary %+v, %d records", s, len(c.recs))
	}
}

// TestRunInFlightLimit: with 2 slots and 5 ms attempts the generator cannot keep 1000/s; every attempt still
// runs and the lag shows.
func TestRunInFlightLimit(t *testing.T) {
	var c collector
	cfg := Config{Rate: 1000, Duration: 50 * time.Millisecond, Target: fakeTarget, MaxInFlight: 2}
	s, err := Run(t.Context(), cfg, fakeWorkload{delay: 5 * time.Millisecond}, &Dialer{Socket: LocalSocket}, c.sink)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.bySeq(t)) != 50 || s.Launched != 50 {
		t.Fatalf("%d records, summary %+v", len(c.recs), s)
	}
	if s.LagMax < 50*time.Millisecond || s.Achieved >= 900 {
		t.Errorf("lag max %s, achieved %.0f/s: the limit's backlog does not show", s.LagMax, s.Achieved)
	}
}

// deadlineWorkload records in Detail how far its deadline lies from its intended start.
type deadlineWorkload struct{}

func (deadlineWorkload) Attempt(ctx context.Context, _ *Dialer, _ netip.AddrPort, rec *results.Record) {
	dl, _ := ctx.Deadline()
	rec.Outcome = results.OutcomeOK
	rec.Detail = dl.Sub(IntendedTime(ctx)).String()
}

// TestRunTimeoutFromIntended: an attempt's deadline runs from its intended start, not from when it began.
func TestRunTimeoutFromIntended(t *testing.T) {
	var c collector
	cfg := Config{Rate: 100, Duration: 50 * time.Millisecond, Timeout: 30 * time.Millisecond, Target: fakeTarget}
	if _, err := Run(t.Context(), cfg, deadlineWorkload{}, &Dialer{Socket: LocalSocket}, c.sink); err != nil {
		t.Fatal(err)
	}
	for _, r := range c.bySeq(t) {
		if r.Detail != "30ms" {
			t.Errorf("attempt %d: deadline %s after its intended start, want 30ms", r.Seq, r.Detail)
		}
	}
}

func TestRunCancel(t *testing.T) {
	var c collector
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(150*time.Millisecond, cancel)
	cfg := Config{Rate: 200, Duration: 10 * time.Second, Target: fakeTarget}
	begin := time.Now()
	s, err := Run(ctx, cfg, fakeWorkload{delay: 20 * time.Millisecond}, &Dialer{Socket: LocalSocket}, c.sink)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if el := time.Since(begin); el > 2*time.Second {
		t.Errorf("run took %s after cancellation", el)
	}
	if n := len(c.bySeq(t)); n == 0 || int64(n) != s.Launched || s.OK != s.Launched {
		t.Errorf("%d records, summary %+v", n, s)
	}
	if s.Window < 100*time.Millisecond || s.Window > time.Second {
		t.Errorf("window %s", s.Window)
	}
}

func TestRunWarmupNotRecorded(t *testing.T) {
	var c collector
	cfg := Config{Rate: 500, Duration: 100 * time.Millisecond, Warmup: 100 * time.Millisecond, Target: fakeTarget}
	begin := time.Now()
	s, err := Run(t.Context(), cfg, fakeWorkload{}, &Dialer{Socket: LocalSocket}, c.sink)
	if err != nil {
		t.Fatal(err)
	}
	if recs := c.bySeq(t); len(recs) != 50 || recs[0].Intended != 0 || s.Launched != 50 {
		t.Fatalf("%d records, summary %+v", len(recs), s)
	}
	if lead := s.Epoch.Sub(begin); lead < 100*time.Millisecond || lead > 150*time.Millisecond {
		t.Errorf("epoch %s after the call, want the warmup's 100ms", lead)
	}
}

func TestOutcomeCounts(t *testing.T) {
	var c outcomeCounts
	for _, o := range []results.Outcome{results.OutcomeOK, results.OutcomeOK, results.OutcomeReset,
		results.OutcomeOther, "bogus"} {
		c.add(o)
	}
	got := c.snapshot()
	want := map[results.Outcome]int64{results.OutcomeOK: 2, results.OutcomeReset: 1, results.OutcomeOther: 2}
	if len(got) != len(want) || got[results.OutcomeOK] != 2 || got[results.OutcomeReset] != 1 ||
		got[results.OutcomeOther] != 2 {
		t.Errorf("counts %v, want %v", got, want)
	}
}

func TestRunValidate(t *testing.T) {
	_, err := Run(t.Context(), Config{Rate: -1, Target: fakeTarget}, nil, &Dialer{}, nil)
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"rate", "duration", "no workload", "no socket func"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// BenchmarkHTTP10Loopback runs the HTTP/1.0 workload against a loopback server at a few thousand conn/s. b.N is
// the number of attempts (duration = b.N/rate); it reports the achieved rate against the target and the lag.
func BenchmarkHTTP10Loopback(b *testing.B) {
	for _, rate := range []float64{1000, 3000, 5000} {
		b.Run(fmt.Sprintf("rate%g", rate), func(b *testing.B) {
			dst := serve(b, respond(okResponse))
			cfg := Config{Cell: "bench", Rate: rate, Timeout: 5 * time.Second, Target: dst,
				Duration: time.Duration(float64(b.N) / rate * float64(time.Second))}
			cfg.Duration = max(cfg.Duration, time.Millisecond)
			b.ResetTimer()
			s, err := Run(context.Background(), cfg, HTTP10{}, &Dialer{Socket: LocalSocket}, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(s.Achieved, "conn/s")
			b.ReportMetric(s.Achieved/rate, "achieved/target")
			b.ReportMetric(float64(s.LagP50.Microseconds()), "lag_p50_us")
			b.ReportMetric(float64(s.LagP99.Microseconds()), "lag_p99_us")
			b.ReportMetric(float64(s.LagMax.Microseconds()), "lag_max_us")
			b.ReportMetric(float64(s.Failed), "failed")
		})
	}
}
