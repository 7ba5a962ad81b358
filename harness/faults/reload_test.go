package faults

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/services"
	"github.com/faultlab/faultlab/results"
)

// fakeTarget is a Reloadable whose reloads take a set time and can fail.
type fakeTarget struct {
	mu      sync.Mutex
	took    time.Duration
	failOn  map[int]bool // call numbers (from 0) that fail
	calls   int
	running bool
	overlap bool
	log     *[]string
}

func (f *fakeTarget) Strategy() string { return "fake" }

func (f *fakeTarget) Reload(ctx context.Context) (services.ReloadResult, error) {
	f.mu.Lock()
	n := f.calls
	f.calls++
	f.overlap = f.overlap || f.running
	f.running = true
	if f.log != nil {
		*f.log = append(*f.log, "reload")
	}
	f.mu.Unlock()
	res := services.ReloadResult{Start: time.Now(), NewPIDs: []int{1000 + n}}
	time.Sleep(f.took)
	res.End = time.Now()
	f.mu.Lock()
	f.running = false
	f.mu.Unlock()
	if f.failOn[n] {
		return res, errors.New("fake reload failed")
	}
	return res, nil
}

func (f *fakeTarget) Procs() int { return 2 }

// logAround records its calls and can fail Before.
type logAround struct {
	log        *[]string
	failBefore bool
}

func (a *logAround) Before(context.Context) error {
	*a.log = append(*a.log, "before")
	if a.failBefore {
		return errors.New("no nftables")
	}
	return nil
}

func (a *logAround) After(context.Context) error {
	*a.log = append(*a.log, "after")
	return nil
}

// runStorm runs s for d and returns the events.
func runStorm(t *testing.T, s *ReloadStorm, d time.Duration) ([]results.ReloadEvent, error) {
	t.Helper()
	var evs []results.ReloadEvent
	s.Sink = func(ev results.ReloadEvent) { evs = append(evs, ev) }
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err := s.Run(ctx)
	return evs, err
}

func TestReloadStormValidate(t *testing.T) {
	tests := []struct {
		name string
		s    *ReloadStorm
		want string
	}{
		{"no-target", &ReloadStorm{Interval: time.Second}, "no target"},
		{"no-interval", &ReloadStorm{Target: &fakeTarget{}}, "interval 0s: must be positive"},
		{"jitter-too-big", &ReloadStorm{Target: &fakeTarget{}, Interval: time.Second, Jitter: time.Second},
			"jitter 1s: must be in [0, interval 1s)"},
		{"negative-jitter", &ReloadStorm{Target: &fakeTarget{}, Interval: time.Second, Jitter: -1}, "jitter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestReloadStormDelays(t *testing.T) {
	s := &ReloadStorm{Interval: 250 * time.Millisecond, Jitter: 50 * time.Millisecond}
	draw := func(seed uint64) []time.Duration {
		rng := rand.New(rand.NewPCG(seed, 0x6661756c746c6162))
		d := make([]time.Duration, 20000)
		for i := range d {
			d[i] = s.delay(rng)
		}
		return d
	}
	a, b, c := draw(1), draw(1), draw(2)
	var sum time.Duration
	lo, hi := time.Hour, time.Duration(0)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, delay %d differs: %s vs %s", i, a[i], b[i])
		}
		lo, hi, sum = min(lo, a[i]), max(hi, a[i]), sum+a[i]
	}
	if lo < 200*time.Millisecond || hi > 300*time.Millisecond {
		t.Errorf("delays in [%s, %s], want within [200ms, 300ms]", lo, hi)
	}
	if lo > 201*time.Millisecond || hi < 299*time.Millisecond {
		t.Errorf("delays in [%s, %s], want the whole of [200ms, 300ms] covered", lo, hi)
	}
	if mean := sum / time.Duration(len(a)); mean < 249*time.Millisecond || mean > 251*time.Millisecond {
		t.Errorf("mean delay %s, want 250ms", mean)
	}
	same := 0
	for i := range a {
		if a[i] == c[i] {
			same++
		}
	}
	if same > len(a)/100 {
		t.Errorf("seeds 1 and 2 share %d of %d delays", same, len(a))
	}
	s.Jitter = 0
	if d := s.delay(nil); d != s.Interval {
		t.Errorf("delay without jitter %s", d)
	}
}

func TestReloadStorm(t *testing.T) {
	var log []string
	target := &fakeTarget{took: 2 * time.Millisecond, log: &log}
	epoch := time.Now()
	s := &ReloadStorm{Target: target, Interval: 40 * time.Millisecond, Jitter: 10 * time.Millisecond, Seed: 7,
		Epoch: epoch, Around: &logAround{log: &log}}
	evs, err := runStorm(t, s, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < 5 || len(evs) > 17 {
		t.Fatalf("%d reloads in 500ms every 40±10ms", len(evs))
	}
	if s.Reloads() != len(evs) || s.Failures() != 0 || target.overlap {
		t.Errorf("reloads %d, failures %d, overlap %v", s.Reloads(), s.Failures(), target.overlap)
	}
	for i, ev := range evs {
		if ev.Seq != i || !ev.OK || ev.Error != "" || ev.Strategy != "fake" || ev.Procs != 2 {
			t.Errorf("event %d: %+v", i, ev)
		}
		if ev.End < ev.Start || ev.Start < int64(30*time.Millisecond) {
			t.Errorf("event %d: start %d end %d", i, ev.Start, ev.End)
		}
		if i > 0 && ev.Start-evs[i-1].Start < int64(29*time.Millisecond) {
			t.Errorf("event %d started %s after the previous one, want at least 30ms", i,
				time.Duration(ev.Start-evs[i-1].Start))
		}
	}
	for i := 0; i+2 < len(log); i += 3 {
		if log[i] != "before" || log[i+1] != "reload" || log[i+2] != "after" {
			t.Fatalf("calls %v: want before, reload, after for each reload", log)
		}
	}
}

func TestReloadStormLate(t *testing.T) {
	target := &fakeTarget{took: 30 * time.Millisecond}
	s := &ReloadStorm{Target: target, Interval: 10 * time.Millisecond}
	evs, err := runStorm(t, s, 400*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < 4 || target.overlap {
		t.Fatalf("%d reloads, overlap %v", len(evs), target.overlap)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Start < evs[i-1].End {
			t.Errorf("reload %d started before the previous one ended", i)
		}
	}
	if s.Late() < len(evs)-2 {
		t.Errorf("Late = %d for %d reloads that each outlast the interval", s.Late(), len(evs))
	}
}

func TestReloadStormFailedReload(t *testing.T) {
	target := &fakeTarget{failOn: map[int]bool{1: true}}
	s := &ReloadStorm{Target: target, Interval: 10 * time.Millisecond}
	evs, err := runStorm(t, s, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < 3 || evs[1].OK || evs[1].Error != "fake reload failed" || !evs[0].OK || !evs[2].OK {
		t.Fatalf("events %+v: want reload 1 failed and the storm going on", evs)
	}
	if s.Failures() != 1 {
		t.Errorf("Failures = %d", s.Failures())
	}
}

func TestReloadStormAroundFailure(t *testing.T) {
	var log []string
	target := &fakeTarget{log: &log}
	s := &ReloadStorm{Target: target, Interval: 10 * time.Millisecond, Around: &logAround{log: &log, failBefore: true}}
	evs, err := runStorm(t, s, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "before: no nftables") {
		t.Fatalf("Run: %v, want the Before error", err)
	}
	if len(evs) != 1 || evs[0].OK || !strings.Contains(evs[0].Error, "no nftables") {
		t.Fatalf("events %+v", evs)
	}
	if strings.Join(log, ",") != "before,after" {
		t.Errorf("calls %v: want no reload after a failed Before, and After still called", log)
	}
}

func TestReloadStormCompletesReloadAtEnd(t *testing.T) {
	target := &fakeTarget{took: 150 * time.Millisecond}
	s := &ReloadStorm{Target: target, Interval: 10 * time.Millisecond}
	begin := time.Now()
	evs, err := runStorm(t, s, 50*time.Millisecond) // ends during the first reload
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || !evs[0].OK {
		t.Fatalf("events %+v: want the reload under way completed", evs)
	}
	if took := time.Since(begin); took < 150*time.Millisecond {
		t.Errorf("Run returned after %s, before the reload ended", took)
	}
}
