package impair_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/impair"
)

// The netem engine on a real lab. Where the kernel has sch_netem it must delay and rate-limit like the
// userspace engine (RTT within 1 ms of the request on average, the same tolerance as TestUserspaceRTT);
// where it has not (the lab machines), Apply must fail naming netem, and Close must leave nothing behind.
func TestNetemEngine(t *testing.T) {
	l := newLab(t)
	av, err := impair.Detect(l.env.Router)
	if err != nil {
		t.Fatal(err)
	}
	var base []time.Duration
	if av.Has(impair.EngineNetem) {
		pingUDP(t, l, 20, time.Millisecond) // ARP and caches
		base, _ = pingUDP(t, l, 300, 3*time.Millisecond)
	}
	e, err := impair.New(impair.EngineNetem, impair.TargetOf(l.env), impair.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	imp := impair.Impairment{Delay: 10 * time.Millisecond, Rate: 20_000_000}
	err = e.Apply(context.Background(), "b", impair.ToHost, imp)
	errFrom := e.Apply(context.Background(), "b", impair.FromHost, imp)
	if !av.Has(impair.EngineNetem) {
		t.Logf("kernel %s has no netem: %v", av.Kernel, err)
		if err == nil || errFrom == nil || !strings.Contains(err.Error(), "netem on b to_host") {
			t.Errorf("apply without sch_netem: to_host %v, from_host %v; want errors naming netem", err, errFrom)
		}
		if err := e.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		assertClean(t, l)
		return
	}
	if err != nil || errFrom != nil {
		t.Fatalf("apply: %v / %v", err, errFrom)
	}
	rtt, _ := pingUDP(t, l, 300, 3*time.Millisecond)
	added := mean(rtt) - mean(base)
	t.Logf("netem 10ms each way: baseline mean rtt %s, impaired %s, added %s", fmtDur(mean(base)),
		fmtDur(mean(rtt)), fmtDur(added))
	if added < 19*time.Millisecond || added > 21*time.Millisecond {
		t.Errorf("netem 10ms each way: added %s to the mean rtt, want 20ms ± 1ms", fmtDur(added))
	}
	// What tc reads back from the kernel is what was asked for, in tc's own units.
	rich := impair.Impairment{Delay: 40 * time.Millisecond, Jitter: 5 * time.Millisecond,
		Distribution: impair.Normal, KeepOrder: true, Rate: 10_000_000,
		LossBurst: &impair.GilbertElliott{P: 0.02, R: 0.5, OneMinusH: 1}}
	apply(t, e, "b", impair.ToHost, rich)
	apply(t, e, "a", impair.FromHost, impair.Impairment{Delay: 5 * time.Millisecond, Loss: 0.01})
	qd := tcShow(t, l)
	t.Logf("tc qdisc show:\n%s", qd)
	mustContain(t, "qdiscs", qd, "qdisc netem 1: dev b root", "delay 40ms  5ms",
		"loss gemodel p 2% r 50% 1-h 100% 1-k 0%", "qdisc tbf 2: dev b parent 1:1 rate 10Mbit",
		"qdisc ingress ffff: dev a", "delay 5ms loss 1%")
	if err := e.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	assertClean(t, l)
}
