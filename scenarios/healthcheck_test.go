package scenarios

import (
	"math"
	"strings"
	"testing"

	"github.com/faultlab/faultlab/results"
	"github.com/faultlab/faultlab/results/analyses"
)

// TestHealthCheck runs real Tengine's active health checks against 400 nginx servers (pathology 3,
// seeds/001) and checks what the lab can stand behind after one quick run (checkSides, per cell):
//   - the checks happened (the claim is void otherwise): thousands of check connections in every cell;
//   - the two instruments agree: on each host whose TIME_WAIT count is large enough to judge (>= 500), the
//     kernel's count at the last sample is within 15% of the count the capture's FINs give (the closes that
//     left a TIME_WAIT there within 60 s before the sample, at 1 s resolution: a second of sampling offset at
//     ~300 checks/s is ~3% of the ~9,000 on the server);
//   - where a host's tcp_max_tw_buckets caps its TIME_WAITs (ka1-maxtw200), the kernel never holds more than the
//     cap, refuses some when the FINs predict more, and held + refused is what the FINs predict (same 15%);
//   - with check_keepalive_requests 100, Tengine waits for the server's FIN (its check module's clean-up path
//     keeps the connection until the read handler sees EOF), so under 1% of its checks leave the TIME_WAIT
//     on the checker, at every RTT.
//
// Which side keeps the TIME_WAIT with check_keepalive_requests 1, and how that moves with the RTT, is what
// docs/healthcheck.md reports from the runs; it is logged here, not asserted (the seed's expectation that
// the checker's share rises with the RTT did not hold in the first runs: see the docs).
func TestHealthCheck(t *testing.T) {
	rep := runScenario(t, "healthcheck.yaml", backend())
	if rep == nil {
		return
	}
	for _, c := range rep.Cells {
		t.Run(c.Name+"/timewait_side", func(t *testing.T) {
			r := checkSides(t, c)
			share := float64(r.Closes.TWInitiator) / float64(r.Closes.Conns)
			if strings.HasPrefix(c.Name, "ka100") && share >= 0.01 {
				t.Errorf("check_keepalive_requests 100: %.2f%% of checks left the TIME_WAIT on the checker, want < 1%%",
					100*share)
			}
		})
	}
}

// TestTimeWaitSteadyState runs Tengine's checks for 80 s, past a TIME_WAIT's 60 s life: from 60 s on,
// TIME_WAITs expire as fast as they start. The quick mode runs one (servers, interval) pair (400 every 1 s);
// the long mode adds 2,000 every 4 s.
// Besides checkSides, the steady-state prediction (check rate x the closing side's share of the closes x 60 s)
// must hold within 15% on the closing side, the one whose FIN comes first in most checks. (On the other
// side the prediction assumes the share is the same all run long; docs/healthcheck.md reports where it was
// not.)
func TestTimeWaitSteadyState(t *testing.T) {
	var cells []string
	if !longMode() {
		cells = []string{"n400-i1s"}
	}
	rep := runScenario(t, "healthcheck-steady.yaml", backend(), cells...)
	if rep == nil {
		return
	}
	for _, c := range rep.Cells {
		t.Run(c.Name+"/timewait_side", func(t *testing.T) {
			r := checkSides(t, c)
			if at := r.Sampled[0].LastAt; at < analyses.TimeWaitLen+10e9 {
				t.Fatalf("last sample at %s: not in the steady state (after %s + 10 s)", at, analyses.TimeWaitLen)
			}
			i, what := 0, "checker" // the closing side
			if r.Closes.ResponderFirst > r.Closes.InitiatorFirst {
				i, what = 1, "server"
			}
			kernel, pred := float64(r.Sampled[i].Last), r.Predicted[i]
			if math.Abs(kernel-pred) > 0.15*pred {
				t.Errorf("closing side (%s): kernel TIME_WAIT %.0f, steady-state prediction %.0f (+-15%%)", what, kernel, pred)
			}
		})
	}
}

// checkSides checks one cell's checker pair: the checks ran, and the kernel's TIME_WAIT counts agree with the
// capture's prediction on each host (with tcp_max_tw_buckets, as held + refused under its cap).
func checkSides(t *testing.T, c results.CellReport) analyses.TimeWaitSideResult {
	t.Helper()
	var sides analyses.TimeWaitSides
	if err := c.Analysis("timewait_side", 0, &sides); err != nil {
		t.Fatal(err)
	}
	var r *analyses.TimeWaitSideResult
	for i := range sides {
		if sides[i].Pair == "proxy>backend" || sides[i].Pair == "client>backend" {
			r = &sides[i]
		}
	}
	if r == nil {
		t.Fatalf("no checker pair in %+v", sides)
	}
	t.Log(r.String())
	if r.Closes.Conns < 1000 {
		t.Fatalf("%d check connections: the checks did not run as asked", r.Closes.Conns)
	}
	for i, what := range []string{"checker", "server"} {
		// A TIME_WAIT the kernel refused for tcp_max_tw_buckets is one the FINs predicted; within a
		// TIME_WAIT's life (60 s) none has expired, so held + refused is what the FINs predict.
		kernel, pred := float64(r.Sampled[i].Last+int(r.Overflow[i])), r.Counted[i]
		if r.Overflow[i] > 0 && r.Sampled[i].LastAt >= analyses.TimeWaitLen {
			t.Fatalf("%s: TIME_WAITs refused in a run longer than a TIME_WAIT lasts: held + refused "+
				"no longer counts the closes", what)
		}
		if limit := r.MaxTW[i]; limit > 0 {
			if r.Sampled[i].Peak > limit {
				t.Errorf("%s host holds %d TIME_WAITs, over its tcp_max_tw_buckets %d", what, r.Sampled[i].Peak, limit)
			}
			if pred > float64(limit) && r.Overflow[i] == 0 {
				t.Errorf("%s host: %.0f TIME_WAITs predicted over its limit %d, none refused", what, pred, limit)
			}
		}
		if pred < 500 {
			continue
		}
		if math.Abs(kernel-pred) > 0.15*pred {
			t.Errorf("%s host %s: kernel TIME_WAIT (held + refused) %.0f, counted %.0f from the capture (+-15%%)",
				what, r.Sampled[i].Host, kernel, pred)
		}
	}
	return *r
}

// TestHealthCheckModel runs the lab's own checker (the check workload, no proxy) against the same 400 servers
// at RTT 0 and at 20 ms with 2 ms of jitter: closing as soon as the response is in (Tengine's check_keepalive_requests 1) and
// waiting for the server's FIN (> 1). checkSides holds both instruments to each other in every cell; a
// checker that closes only after reading the server's FIN is the passive closer by construction, so under
// 1% of its closes may leave the TIME_WAIT on it (simultaneous closes are the only way there). Where the
// close-on-response checker's share goes with the RTT is logged and reported in docs/healthcheck.md.
func TestHealthCheckModel(t *testing.T) {
	rep := runScenario(t, "healthcheck-model.yaml", backend(), "response", "eof", "response-rtt20-jitter2",
		"eof-rtt20-jitter2")
	if rep == nil {
		return
	}
	for _, c := range rep.Cells {
		t.Run(c.Name+"/timewait_side", func(t *testing.T) {
			r := checkSides(t, c)
			share := float64(r.Closes.TWInitiator) / float64(r.Closes.Conns)
			if strings.HasPrefix(c.Name, "eof") && share >= 0.01 {
				t.Errorf("close on the server's FIN: %.2f%% of checks left the TIME_WAIT on the checker, want < 1%%",
					100*share)
			}
		})
	}
}
