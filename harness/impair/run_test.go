package impair_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/impair"
)

// geLossRange simulates the model over n packets many times (seeded, so the bound is fixed) and returns
// the 0.5% and 99.5% quantiles of the loss count: a run of an exact engine falls outside with
// probability about 1%.
func geLossRange(m impair.GilbertElliott, n int) (lo, hi int) {
	r := rand.New(rand.NewPCG(11, 12))
	counts := make([]int, 1000)
	for i := range counts {
		bad := false
		for range n {
			var lost bool
			if !bad {
				bad = r.Float64() < m.P
				lost = r.Float64() < m.OneMinusK
			} else {
				bad = !(r.Float64() < m.R)
				lost = r.Float64() < m.OneMinusH
			}
			if lost {
				counts[i]++
			}
		}
	}
	slices.Sort(counts)
	return counts[4], counts[995]
}

// Burst loss (Gilbert-Elliott, run by the delay program with drop verdicts): the loss count over 30,000
// datagrams must fall in the simulated 99% range of the model (false alarm about 1%), every missing
// datagram must be one the program dropped, and losses must come in runs (mean run length above 1.2;
// the model's is about 1.5 and independent loss at this rate gives 1.02, with a standard error near
// 0.04 over ~300 runs).
func TestUserspaceBurstLoss(t *testing.T) {
	l := newLab(t)
	e := l.engine(t, impair.Options{})
	m := impair.GilbertElliott{P: 0.01, R: 0.3, OneMinusH: 0.5}
	apply(t, e, "b", impair.ToHost, impair.Impairment{LossBurst: &m})
	const n = 30_000
	lo, hi := geLossRange(m, n)
	res := blastUDP(t, l, n, 10_000, 64)
	lost := res.sent - res.received
	q := e.Stats().Queue
	runs, inRun := 0, 0
	seen := make([]bool, n)
	for _, s := range res.seqs {
		seen[s] = true
	}
	for i := 0; i < n; i++ {
		if !seen[i] {
			inRun++
			if i == 0 || seen[i-1] {
				runs++
			}
		}
	}
	meanRun := float64(inRun) / float64(max(runs, 1))
	t.Logf("burst loss %+v (mean %.4f): %d of %d lost, simulated 99%% range [%d, %d], %d runs of mean %.2f; "+
		"program dropped %d", m, m.MeanLoss(), lost, n, lo, hi, runs, meanRun, q.Dropped)
	if lost < lo || lost > hi {
		t.Errorf("%d lost, outside [%d, %d]", lost, lo, hi)
	}
	if uint64(lost) != q.Dropped {
		t.Errorf("program dropped %d, %d missing", q.Dropped, lost)
	}
	if meanRun < 1.2 {
		t.Errorf("mean loss run %.2f: losses are not bursty", meanRun)
	}
}

// A scenario's schedule through Start: 10 ms from the start, 30 ms from 0.6 s, none from 1.2 s; the
// report records the steps, and Close leaves nothing in the router.
func TestRunSchedule(t *testing.T) {
	l := newLab(t)
	cfg := impair.Config{Engine: impair.EngineAuto, Links: []impair.LinkConfig{{Host: "b", ToHost: &impair.DirConfig{
		Impairment: impair.Impairment{Delay: 10 * time.Millisecond},
		Schedule: []impair.Step{{At: 600 * time.Millisecond, Impairment: impair.Impairment{Delay: 30 * time.Millisecond}},
			{At: 1200 * time.Millisecond}},
	}}}}
	run, err := impair.Start(context.Background(), l.env, cfg, impair.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var phases [3][]time.Duration
	for i, at := range []time.Duration{200 * time.Millisecond, 800 * time.Millisecond, 1400 * time.Millisecond} {
		time.Sleep(time.Until(run.Started().Add(at)))
		phases[i], _ = pingUDP(t, l, 20, 5*time.Millisecond)
	}
	rep, err := run.Close()
	if err != nil {
		t.Fatalf("close: %v", err)
	}
	for i, want := range []time.Duration{10 * time.Millisecond, 30 * time.Millisecond, 0} {
		if got := quantile(phases[i], 0.5); got < want || got > want+2*time.Millisecond {
			t.Errorf("phase %d: median rtt %s, want %s", i, fmtDur(got), want)
		}
	}
	if len(rep.Applied) != 3 || rep.Applied[1].At != 600*time.Millisecond ||
		rep.Applied[1].Actual < rep.Applied[1].At || rep.Applied[2].Summary != "none" {
		t.Errorf("applied: %+v", rep.Applied)
	}
	if b, err := json.Marshal(rep); err != nil || !strings.Contains(string(b), `"engine":"`+rep.Engine+`"`) {
		t.Errorf("report json: %v %s", err, b)
	}
	for _, a := range rep.Applied {
		t.Logf("applied %s at %s (planned %s), took %s", a.Summary, a.Actual, a.At, a.Took)
	}
	t.Logf("report: engine %s, warnings %v, params %v queue %+v", rep.Engine, rep.Warnings, rep.Stats.Params,
		rep.Stats.Queue)
	assertClean(t, l)
}

// Every mechanism at once, then Close: the router namespace is back to plain veths and no rule, and the
// root namespace never had anything of ours.
func TestUserspaceTeardown(t *testing.T) {
	l := newLab(t)
	e, err := impair.New(impair.EngineUserspace, impair.TargetOf(l.env), impair.Options{})
	if err != nil {
		t.Fatal(err)
	}
	full := impair.Impairment{Delay: 5 * time.Millisecond, Loss: 0.01, Rate: 20_000_000}
	apply(t, e, "a", impair.FromHost, full)
	apply(t, e, "b", impair.ToHost, full)
	apply(t, e, "b", impair.FromHost, impair.Impairment{LossBurst: &impair.GilbertElliott{P: 0.1, R: 0.5, OneMinusH: 1}})
	rules, qd := nftRuleset(t, l), tcShow(t, l)
	mustContain(t, "nft ruleset", rules, "table ip "+l.env.Prefix+"-impair",
		`iifname "a" numgen random mod 1000000 < 10000 counter name "loss_a_from_host" drop`,
		`oifname "b" counter name "queue_b_to_host" queue`)
	// nft prints the xtables target as "queue num 1 bypass", its own expression as "queue flags bypass to 1".
	if !strings.Contains(rules, "queue num 1 bypass") && !strings.Contains(rules, "queue flags bypass to 1") {
		t.Errorf("no bypassing queue rule to queue 1 in:\n%s", rules)
	}
	mustContain(t, "qdiscs", qd, "qdisc tbf 1: dev b root", "qdisc ingress ffff: dev a", "dev flifb")
	pingUDP(t, l, 20, time.Millisecond)
	t0 := time.Now()
	if err := e.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	t.Logf("close took %s", time.Since(t0))
	if err := e.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if err := e.Apply(context.Background(), "b", impair.ToHost, full); err == nil {
		t.Error("apply after close succeeded")
	}
	assertClean(t, l)
}

// assertClean checks that the router has no table, qdisc or ifb of ours, and the root namespace neither.
func assertClean(t *testing.T, l *lab) {
	t.Helper()
	if rules := nftRuleset(t, l); strings.Contains(rules, "impair") {
		t.Errorf("nft rules left in the router:\n%s", rules)
	}
	if qd := tcShow(t, l); strings.Contains(qd, "tbf") || strings.Contains(qd, "ingress") || strings.Contains(qd, "flifb") {
		t.Errorf("qdiscs left in the router:\n%s", qd)
	}
	root, err := exec.Command("nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables: %v", err)
	}
	links, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v", err)
	}
	if strings.Contains(string(root), l.env.Prefix) || strings.Contains(string(links), "flifb") ||
		strings.Contains(string(links), "flprobe") {
		t.Errorf("something of ours in the root namespace:\n%s\n%s", root, links)
	}
}
