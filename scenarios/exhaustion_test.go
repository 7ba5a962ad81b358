package scenarios

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/results/analyses"
)

// TestExhaustion reproduces source-port exhaustion behind HAProxy in TCP mode (pathology 4) and checks,
// besides the `expect:` claims of exhaustion.yaml, that each cell did what the port budget predicts: where
// the budget runs out within the run, the first failure comes within 20% of the predicted time; where it
// does not, nothing fails; and persistent connections leave no TIME_WAIT pile-up on the proxy.
//
// The prediction can fail: the share of closes that leave the TIME_WAIT on the proxy (a race between the
// proxy's FIN and MariaDB's after COM_QUIT: 65-82% measured here) is estimated from the capture over the
// connections opened in the first 40% of Ports/Offered, before any failure is possible, so it cannot know
// when the failure came. The 20% tolerance covers the estimate's sampling error (400 connections in quick
// mode: a share of 0.75 has a standard error of 0.022, 3% of the prediction, so 20% is more than 6 of them)
// and leaves the rest for the model's error: a share that drifts during the run shows up as a miss, which
// is what this check is for. The count is checked independently: when the first attempt fails, the ports the
// proxy holds toward the server (TIME_WAIT or open, from the capture) are within 5% of the budget; what may
// differ is the few connections whose handshake or close is in flight at that instant (about a millisecond
// of traffic at 500/s) and the health checks'.
func TestExhaustion(t *testing.T) {
	rep := runScenario(t, "exhaustion.yaml", backend())
	if rep == nil {
		return
	}
	for _, c := range rep.Cells {
		t.Run(c.Name+"/prediction", func(t *testing.T) {
			var budgets analyses.PortBudgets
			if err := c.Analysis("port_budget", 0, &budgets); err != nil {
				t.Fatal(err)
			}
			e, ok := budgets["lb"]
			if !ok {
				t.Fatalf("no port budget for proxy lb (%v)", budgets)
			}
			t.Log(e.String())
			dur := time.Duration(float64(c.Stats.Attempts) / e.Offered * float64(time.Second))
			switch {
			case c.Name == "persistent":
				if e.TimeWaitPeak > 50 {
					t.Errorf("persistent connections: TIME_WAIT peak %d on the proxy, want no growth (<= 50)", e.TimeWaitPeak)
				}
			case e.PredictedFirst > 0 && time.Duration(float64(e.PredictedFirst)*0.8) < dur:
				// The quick mode's 1,000 ports must last to the end of the budget (the check). In the
				// long mode the kernel's even-first port search makes connect() stall once half of a range of
				// tens of thousands is held, so the first failure may come there instead (PredictedHalf).
				want, ports, what := e.PredictedFirst, e.Ports, "the budget"
				if longMode() && e.PredictedHalf > 0 && 4*e.HeldAtFirst < 3*e.Ports {
					want, ports, what = e.PredictedHalf, e.Ports/2, "half the budget (connect()'s even-port cliff)"
				}
				lo, hi := time.Duration(float64(want)*0.8), time.Duration(float64(want)*1.2)
				if e.MeasuredFirst == 0 && hi > dur {
					// the tolerance reaches past the run's end (the long mode's 8 addresses): no failure yet is
					// as consistent with the budget as one
					t.Logf("no failure within %s; predicted at %s (+-20%% reaches past the end)", dur, want)
					return
				}
				if e.MeasuredFirst > 0 {
					t.Logf("prediction error %+.1f%% (share %.1f%% from the %d connections of the first %s)",
						100*(e.MeasuredFirst.Seconds()/want.Seconds()-1), 100*e.TWFraction, e.TWSample, e.EstimatedOver)
				}
				if e.MeasuredFirst < lo || e.MeasuredFirst > hi {
					t.Errorf("first failure at %s, predicted %s for %s (+-20%%: %s..%s)", e.MeasuredFirst, want,
						what, lo, hi)
				}
				if d := e.HeldAtFirst - ports; 20*d > ports || -20*d > ports {
					t.Errorf("at the first failure the proxy held %d ports toward the server, %s is %d (+-5%%)",
						e.HeldAtFirst, what, ports)
				}
			default:
				if e.ConnectErrors > 0 {
					t.Errorf("%d 'no free ports' errors (EADDRNOTAVAIL), but the port budget predicts none within %s",
						e.ConnectErrors, dur)
				}
				if e.Lifetime == 0 && e.TimeWaitPeak >= e.Ports {
					t.Errorf("TIME_WAIT peak %d reached the %d ports HAProxy binds: TIME_WAIT was not taken over",
						e.TimeWaitPeak, e.Ports)
				}
				if e.MeasuredFirst != 0 {
					t.Errorf("a failure at %s, but the port budget predicts none within %s", e.MeasuredFirst, dur)
				}
			}
		})
	}
}

// TestExhaustionRejectsTwRecycle checks that asking for the removed net.ipv4.tcp_tw_recycle fails with the
// removal message and the line, rather than being skipped.
func TestExhaustionRejectsTwRecycle(t *testing.T) {
	data, err := os.ReadFile("exhaustion.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(data), `net.core.somaxconn: "4096"`, `net.ipv4.tcp_tw_recycle: "1"`, 1)
	_, err = spec.Parse("exhaustion.yaml", []byte(bad))
	if err == nil {
		t.Fatal("a scenario asking for tcp_tw_recycle was accepted")
	}
	line := 1 + strings.Count(bad[:strings.Index(bad, "net.ipv4.tcp_tw_recycle")], "\n")
	for _, want := range []string{fmt.Sprintf("exhaustion.yaml:%d:", line), "net.ipv4.tcp_tw_recycle was removed in Linux 4.12"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// TestExhaustionLongMode checks that the nightly mode runs the kernel's default port range at the incident's
// rate, and that a row's own range still wins over it.
func TestExhaustionLongMode(t *testing.T) {
	s, err := spec.Load("exhaustion.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"default": "32768 60999", "wide-range": "20000 60999"}
	for _, c := range spec.Expand(s, true) {
		if c.Scenario.Workload.Rate != 2500 || c.Scenario.Workload.Duration != 120*time.Second {
			t.Errorf("%s: long mode runs %.0f/s for %s, want 2500/s for 2m0s", c.Name, c.Scenario.Workload.Rate,
				c.Scenario.Workload.Duration)
		}
		if w, ok := want[c.Name]; ok {
			if got := c.Scenario.Hosts[1].Sysctls["net.ipv4.ip_local_port_range"]; got != w {
				t.Errorf("%s: long mode port range %q, want %q", c.Name, got, w)
			}
		}
	}
}
