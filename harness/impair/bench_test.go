package impair_test

import (
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/impair"
)

// benchDelay is the delay the accuracy benchmark asks for.
const benchDelay = 20 * time.Millisecond

// BenchmarkUserspaceAccuracy offers UDP datagrams from a to b through a 20 ms userspace delay at rising
// packet rates, for 2 s each, and reports the error of the added delay (one-way delay from the sender's
// clock to b's kernel receive timestamp, minus the unimpaired one-way delay, minus 20 ms): err_p50_us and
// err_p99_us, the engine's own release lateness, the loss, and the overflow counter (packets that skipped
// the delay because the engine could not keep up) with the share of datagrams that arrived undelayed. The
// last case shrinks the kernel queue to 256 packets,
// below the 400 that 20k packets/s x 20 ms need, so the overflow counter must fire.
// Run it alone: go test -run '^$' -bench UserspaceAccuracy -benchtime 1x ./harness/impair/
func BenchmarkUserspaceAccuracy(b *testing.B) {
	for _, tc := range []struct {
		name   string
		pps    int
		maxLen uint32
	}{
		{"pps=1000", 1000, 0}, {"pps=5000", 5000, 0}, {"pps=10000", 10000, 0}, {"pps=20000", 20000, 0},
		{"pps=40000", 40000, 0}, {"pps=80000", 80000, 0}, {"pps=20000/queue=256", 20000, 256},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := newLab(b)
			blastUDP(b, l, 200, 1000, 64) // ARP and caches
			base := quantile(blastUDP(b, l, 2000, 2000, 64).oneWay, 0.5)
			e := l.engine(b, impair.Options{MaxQueueLen: tc.maxLen})
			apply(b, e, "b", impair.ToHost, impair.Impairment{Delay: benchDelay})
			for b.Loop() {
				before := e.Stats().Queue
				noisec := make(chan machineNoise, 1)
				go func() { noisec <- measureNoise(2 * time.Second) }()
				res := blastUDP(b, l, 2*tc.pps, float64(tc.pps), 64)
				noise := <-noisec
				after := e.Stats().Queue
				errs := make([]time.Duration, len(res.oneWay))
				undelayed := 0
				for i, d := range res.oneWay {
					errs[i] = d - base - benchDelay
					if errs[i] < -benchDelay/2 {
						undelayed++
					}
				}
				overflow := after.Overflow - before.Overflow
				b.ReportMetric(float64(res.sent)/res.sendTime.Seconds(), "offered_pps")
				b.ReportMetric(us(quantile(errs, 0.5)), "err_p50_us")
				b.ReportMetric(us(quantile(errs, 0.99)), "err_p99_us")
				b.ReportMetric(us(after.LateP99), "late_p99_us")
				b.ReportMetric(100*float64(res.sent-res.received)/float64(res.sent), "loss_%")
				b.ReportMetric(float64(overflow), "overflow_pkts")
				b.ReportMetric(100*float64(undelayed)/float64(max(res.received, 1)), "undelayed_%")
				b.Logf("%s: offered %.0f pps, error p50 %s p99 %s, late p99 %s, recv lag p99 %s, lost %d, "+
					"overflow %d (%d arrived undelayed), id gaps %d, max held %d; machine: %d stalls, control late "+
					"p99 %s max %s; load %s", tc.name, float64(res.sent)/res.sendTime.Seconds(),
					fmtDur(quantile(errs, 0.5)), fmtDur(quantile(errs, 0.99)), after.LateP99, after.RecvLagP99,
					res.sent-res.received, overflow, undelayed, after.IDGaps, after.MaxPending, len(noise.stalls),
					fmtDur(quantile(noise.late, 0.99)), fmtDur(quantile(noise.late, 1)), loadavg())
				if tc.maxLen > 0 && overflow == 0 {
					b.Errorf("queue of %d at %d pps x %s: overflow counter did not fire", tc.maxLen, tc.pps, benchDelay)
				}
			}
		})
	}
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
