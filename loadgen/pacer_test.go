package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestScheduleCount(t *testing.T) {
	tests := []struct {
		rate float64
		dur  time.Duration
		want uint64
	}{
		{1000, time.Second, 1000},
		{3, time.Second, 3},
		{7, time.Second, 7},
		{0.5, 10 * time.Second, 5},
		{3000, 100 * time.Millisecond, 300},
		{1e6, time.Millisecond, 1000},
		{4321, 60 * time.Second, 259260},
		{333.3, 1500 * time.Millisecond, 500}, // 499.95 -> the 500 offsets below 1.5 s
		{2.5, time.Second, 3},                 // offsets 0, 0.4 s, 0.8 s
		{1000, 0, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("rate%g_dur%s", tt.rate, tt.dur), func(t *testing.T) {
			n := scheduleCount(tt.rate, tt.dur)
			if n != tt.want {
				t.Fatalf("count = %d, want %d", n, tt.want)
			}
			if n > 0 && scheduleOffset(n-1, tt.rate) >= tt.dur || scheduleOffset(n, tt.rate) < tt.dur {
				t.Errorf("count %d is not the number of offsets below %s", n, tt.dur)
			}
		})
	}
}

// TestScheduleOffsetNoDrift checks that due times are computed from the index, not accumulated.
func TestScheduleOffsetNoDrift(t *testing.T) {
	for _, i := range []uint64{1, 999, 1_000_000, 3_600_000} {
		if got, want := scheduleOffset(i, 1000), time.Duration(i)*time.Millisecond; got != want {
			t.Errorf("offset(%d, 1000/s) = %s, want %s", i, got, want)
		}
	}
	if got := scheduleOffset(3, 3); got != time.Second {
		t.Errorf("offset(3, 3/s) = %s, want 1s", got)
	}
	if got := scheduleOffset(3*3600*3, 3); got != 3*time.Hour {
		t.Errorf("offset after 3h at 3/s = %s", got)
	}
}

// TestPacerCatchUp starts a schedule already 50 ms late: the overdue attempts go out in one batch, in order,
// with their intended times intact, and none is skipped.
func TestPacerCatchUp(t *testing.T) {
	start := time.Now().Add(-50 * time.Millisecond)
	var mu sync.Mutex
	var got []uint64
	var late int
	p := pacer{sched: newSchedule(start, 1000, 100*time.Millisecond), slots: make(chan struct{}, 1000),
		launch: func(i uint64, intended time.Time) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, i)
			if !intended.Equal(start.Add(time.Duration(i) * time.Millisecond)) {
				t.Errorf("attempt %d intended %s after start", i, intended.Sub(start))
			}
			if time.Since(intended) > 20*time.Millisecond {
				late++
			}
		}}
	n, err := p.run(context.Background())
	if err != nil || n != 100 {
		t.Fatalf("run = %d, %v; want 100, nil", n, err)
	}
	if !slices.Equal(got, seq(100)) {
		t.Errorf("launched %v", got)
	}
	if late < 20 {
		t.Errorf("only %d attempts launched late; the overdue batch was not caught up", late)
	}
}

// TestPacerInFlightLimit holds every slot: the pacer waits instead of skipping, and cancellation stops it.
func TestPacerInFlightLimit(t *testing.T) {
	slots := make(chan struct{}, 3)
	var launched []uint64
	p := pacer{sched: newSchedule(time.Now(), 1000, time.Second), slots: slots,
		launch: func(i uint64, _ time.Time) { launched = append(launched, i) }}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	n, err := p.run(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || n != 3 || !slices.Equal(launched, seq(3)) {
		t.Fatalf("run = %d, %v, launched %v; want 3 launched then the deadline", n, err, launched)
	}
}

func seq(n uint64) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = uint64(i)
	}
	return s
}

func TestLagHist(t *testing.T) {
	var h lagHist
	r := rand.New(rand.NewPCG(1, 2))
	vals := make([]time.Duration, 100000)
	for i := range vals {
		vals[i] = time.Duration(r.ExpFloat64() * float64(time.Millisecond))
		h.add(vals[i])
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := h.quantile(q)
		if d := float64(got-exact) / float64(exact); d < -0.001 || d > 0.016 {
			t.Errorf("q%g = %s, exact %s (%.2f%%)", q, got, exact, 100*d)
		}
	}
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1 << 40, 1<<63 - 1} {
		b := histBucket(v)
		if histUpper(b) < v || (b > 0 && histUpper(b-1) >= v) {
			t.Errorf("value %d in bucket %d [%d, %d]", v, b, histUpper(b-1)+1, histUpper(b))
		}
	}
}

// BenchmarkSleepLateness compares how late a plain Go timer and the pacer's sleepUntil (locked thread, 1 ns
// timer slack, nanosleep for the last 2 ms) wake up for due times 200 µs apart (5000/s).
func BenchmarkSleepLateness(b *testing.B) {
	measure := func(b *testing.B, sleep func(due time.Time)) {
		late := make([]time.Duration, 0, b.N)
		start := time.Now()
		for i := range b.N {
			due := start.Add(time.Duration(i) * 200 * time.Microsecond)
			sleep(due)
			late = append(late, time.Since(due))
		}
		slices.Sort(late)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(late[len(late)/2].Microseconds()), "late_p50_us")
		b.ReportMetric(float64(late[len(late)*99/100].Microseconds()), "late_p99_us")
	}
	b.Run("go_timer", func(b *testing.B) {
		measure(b, func(due time.Time) { time.Sleep(time.Until(due)) })
	})
	b.Run("sleep_until", func(b *testing.B) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
			unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
			timer := time.NewTimer(time.Hour)
			measure(b, func(due time.Time) { sleepUntil(context.Background(), timer, due) })
		}()
		<-done
	})
}
