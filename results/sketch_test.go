package results

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

// checkQuantiles asserts that got (from a Sketch) matches the exact nearest-rank want within the sketch's
// stated error: N and Max exactly, every quantile within SketchRelativeError of the exact one.
func checkQuantiles(t *testing.T, name string, got, want Quantiles) {
	t.Helper()
	if got.N != want.N || got.Max != want.Max {
		t.Errorf("%s: N %d max %v, want exactly %d and %v", name, got.N, got.Max, want.N, want.Max)
	}
	pairs := []struct {
		q         string
		got, want time.Duration
	}{{"p50", got.P50, want.P50}, {"p90", got.P90, want.P90}, {"p99", got.P99, want.P99},
		{"p999", got.P999, want.P999}}
	for _, p := range pairs {
		if !withinSketchError(p.got, p.want) {
			t.Errorf("%s %s: %v, want %v within %.2f%%", name, p.q, p.got, p.want, 100*SketchRelativeError)
		}
	}
}

func withinSketchError(got, want time.Duration) bool {
	return math.Abs(float64(got-want)) <= SketchRelativeError*math.Abs(float64(want))
}

func TestSketchLayout(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	vals := []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<42 - 1}
	for range 100000 {
		vals = append(vals, uint64(math.Exp(rng.Float64()*math.Log(1<<42))))
	}
	for _, v := range vals {
		i := sketchIndex(v)
		if i < 0 || i >= sketchBuckets {
			t.Fatalf("value %d: bucket %d outside [0,%d)", v, i, sketchBuckets)
		}
		lo, w := sketchBucket(i)
		if v < lo || v >= lo+w {
			t.Fatalf("value %d in bucket %d = [%d,%d)", v, i, lo, lo+w)
		}
		if w > 1 && float64(w)/float64(lo) > 1.0/sketchSub {
			t.Fatalf("bucket %d = [%d,%d) is wider than 1/%d of its lower bound", i, lo, lo+w, sketchSub)
		}
	}
	for i := 1; i < sketchBuckets; i++ { // buckets tile the range without gaps
		plo, pw := sketchBucket(i - 1)
		if lo, _ := sketchBucket(i); lo != plo+pw {
			t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, plo+pw)
		}
	}
	if sketchIndex(1<<42) != sketchBuckets || sketchIndex(math.MaxInt64) != sketchBuckets {
		t.Error("values from 2^42 ns are not in the overflow bucket")
	}
	if hour := time.Hour; sketchIndex(uint64(hour)) == sketchBuckets {
		t.Error("one hour is beyond the sketch's buckets")
	}
}

func TestSketchAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	tests := []struct {
		name string
		gen  func() time.Duration
	}{
		{"lognormal_ms", func() time.Duration { return time.Duration(math.Exp(rng.NormFloat64()*1.5 + 13)) }},
		{"tiny_ns", func() time.Duration { return time.Duration(rng.IntN(300)) }},
		{"bimodal_syn_retransmit", func() time.Duration {
			if rng.IntN(50) == 0 {
				return time.Second + time.Duration(rng.IntN(int(time.Millisecond)))
			}
			return 300*time.Microsecond + time.Duration(rng.IntN(20000))
		}},
		{"up_to_an_hour", func() time.Duration { return time.Duration(rng.Int64N(int64(time.Hour))) }},
		{"constant", func() time.Duration { return 303 * time.Microsecond }},
		{"negative_lag", func() time.Duration { return time.Duration(rng.IntN(2000) - 1000) }},
	}
	qs := []float64{0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s Sketch
			ds := make([]time.Duration, 20011)
			for i := range ds {
				ds[i] = tc.gen()
				s.Add(ds[i])
			}
			slices.Sort(ds)
			for _, q := range qs {
				got, want := s.Quantile(q), Quantile(ds, q)
				if !withinSketchError(got, want) && !(want < 0 && got >= ds[0] && got <= 0) {
					t.Errorf("q=%g: %v, exact %v (relative error %.3g > %.3g)", q, got, want,
						math.Abs(float64(got-want))/float64(want), SketchRelativeError)
				}
			}
			checkQuantiles(t, tc.name, s.Quantiles(), clampNegative(DurationQuantiles(ds)))
		})
	}
}

// clampNegative stands for the sketch's one stated inexactness beyond its relative error: negative values are
// counted at zero (only their minimum is kept).
func clampNegative(q Quantiles) Quantiles {
	q.P50, q.P90, q.P99, q.P999 = max(q.P50, 0), max(q.P90, 0), max(q.P99, 0), max(q.P999, 0)
	return q
}

func TestSketchEdges(t *testing.T) {
	var s Sketch
	if s.Quantiles() != (Quantiles{}) || s.Quantile(0.5) != 0 {
		t.Errorf("empty sketch: %+v", s.Quantiles())
	}
	s.Add(2 * time.Hour) // beyond the buckets: reported as the (exact) maximum
	s.Add(3 * time.Hour)
	if q := s.Quantiles(); q.N != 2 || q.P50 != 3*time.Hour || q.P99 != 3*time.Hour || q.Max != 3*time.Hour {
		t.Errorf("overflow: %+v, want every quantile beyond the buckets reported as the maximum, 3h", q)
	}
	var a, b, all Sketch
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 5000 {
		d := time.Duration(rng.Int64N(int64(time.Second)))
		all.Add(d)
		if i%3 == 0 {
			a.Add(d)
		} else {
			b.Add(d)
		}
	}
	a.Merge(&b)
	if a != all {
		t.Error("merging two sketches differs from one sketch of all the values")
	}
}

// TestSummaryFixedMemory adds 2,000,000 attempts to one Summary: the heap must not grow with them (the
// slices of every latency it once kept took 48 MB here, and the runner's Records 2 GB).
func TestSummaryFixedMemory(t *testing.T) {
	const n = 2_000_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := NewSummary("c", nil, SummaryOptions{Window: WindowOptions{End: n * 500 * time.Microsecond}})
	addSynthetic(s, n)
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	st := s.Close()
	t.Logf("heap growth after %d attempts: %d KB (%.1f bytes/attempt); allocated in total %d KB",
		n, growth>>10, float64(growth)/n, (after.TotalAlloc-before.TotalAlloc)>>10)
	if growth > 10<<20 {
		t.Errorf("heap grew by %d MB over %d attempts, want < 10 MB", growth>>20, n)
	}
	if st.Attempts != n || st.Connect.N != st.OK || st.Windows != n/2000 {
		t.Errorf("attempts %d, connect n %d of %d ok, %d windows", st.Attempts, st.Connect.N, st.OK, st.Windows)
	}
}

// addSynthetic adds n attempts at 2,000/s (so n/2000 one-second windows), one in 997 reset.
func addSynthetic(s *Summary, n int) {
	r := Record{Cell: "c", Phase: PhaseDone}
	for i := range n {
		r.Seq = uint64(i)
		r.Intended = int64(i) * int64(500*time.Microsecond)
		r.Start = r.Intended + int64(i%1000)*1000
		r.Connect, r.Total, r.Outcome, r.Errno = 200_000+int64(i%5000)*100, 900_000+int64(i%7000)*100,
			OutcomeOK, ""
		if i%997 == 0 {
			r.Outcome, r.Errno, r.Total = OutcomeReset, "ECONNRESET", 0
		}
		s.Add(&r)
	}
}

func BenchmarkSummaryAdd(b *testing.B) {
	b.ReportAllocs()
	s := NewSummary("c", nil, SummaryOptions{})
	addSynthetic(s, b.N)
}
