package scenarios

import (
	"testing"

	"github.com/faultlab/faultlab/capture"
	"github.com/faultlab/faultlab/harness/docker"
	"github.com/faultlab/faultlab/harness/docker/dockertest"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/harness/testutil"
	"github.com/faultlab/faultlab/results"
	"github.com/faultlab/faultlab/results/analyses"
)

// TestReload reproduces HAProxy's soft-reload failures (pathology 1) and measures each mitigation; the
// claims it checks are the `expect:` list of reload.yaml, each with its stated false-alarm rate. It also
// checks, from the capture on the proxy's link, that the client's resets were sent by the proxy host.
func TestReload(t *testing.T) {
	rep := runScenario(t, "reload.yaml", backend())
	if rep == nil || t.Failed() {
		return
	}
	if c := rep.Cell("legacy"); c != nil {
		checkResetsFromProxy(t, c)
	}
}

// checkResetsFromProxy checks, on the capture of the proxy's link, that the client's resets were sent by
// the proxy host: at least as many RSTs went toward the client as the client saw resets and refusals. (The
// proxy also aborts its server-side connections with RSTs, which is HAProxy's normal close toward servers,
// so RSTs toward the client are the ones that count.)
func checkResetsFromProxy(t *testing.T, c *results.CellReport) {
	t.Helper()
	var toClient uint64
	by := map[capture.Role]uint64{}
	for rep := range max(c.Reps, 1) { // the resets are the cell's over its rounds; so are the RSTs
		var capt analyses.CaptureResult
		if err := c.Analysis("capture", rep, &capt); err != nil {
			t.Fatalf("cell %s: %v", c.Name, err)
		}
		sum, ok := capt.Links["proxy-eth0"]
		if !ok {
			t.Fatalf("cell %s rep %d: no capture analysis of proxy-eth0 (links: %v)", c.Name, rep, capt.Links)
		}
		toClient += sum.ToClient.RST
		for role, n := range sum.RSTBy {
			by[role] += n
		}
	}
	resets := uint64(c.Stats.ByOutcome[results.OutcomeReset] + c.Stats.ByOutcome[results.OutcomeRefused])
	t.Logf("cell %s (%d repetitions): client saw %d resets; %d RSTs went toward the client; RSTs by sender: "+
		"proxy %d, client %d, backend %d", c.Name, max(c.Reps, 1), resets, toClient, by[capture.RoleProxy],
		by[capture.RoleClient], by[capture.RoleBackend])
	if resets == 0 {
		t.Errorf("cell %s: no resets to attribute", c.Name)
	}
	if toClient < resets {
		t.Errorf("cell %s: the client saw %d resets but only %d RSTs went toward it from the proxy", c.Name,
			resets, toClient)
	}
}

// TestReloadBackendsAgree runs the Reload matrix on the backend TestReload did not use (docker when the
// tests run on netns, and the other way round) and checks that every expectation gets the same verdict on
// both: the lab's conclusions must not depend on how the hosts are made. The docker backend needs a Docker
// engine and the lab's images (`make images`). The quick mode runs on the other backend one cell per
// mechanism a backend implements differently (agreeBackendCells): no reloads, HAProxy's -sf and -x reloads,
// a sysctl in the proxy's namespace, an nft table there, the impairment engine on a link, Tengine; the long
// mode runs every cell.
func TestReloadBackendsAgree(t *testing.T) {
	testutil.RequireRoot(t)
	first := backend()
	if first == "" {
		first = "netns"
	}
	other := map[string]string{"netns": "docker", "docker": "netns"}[first]
	dockertest.RequireDocker(t)
	// the Tengine cells run the lab's tengine image (make images builds it from the vendored release)
	dockertest.RequireImages(t, docker.HAProxyImage, docker.NginxImage, docker.ToolsImage, docker.LabImage("tengine"))
	a := reports["reload.yaml@"+backend()]
	if a == nil {
		a = runScenario(t, "reload.yaml", first)
	}
	var cells []string
	if !longMode() {
		cells = agreeBackendCells
	}
	b := runScenario(t, "reload.yaml", other, cells...)
	if a == nil || b == nil {
		t.Fatal("a backend produced no report")
	}
	verdicts := func(r *results.Report) map[string]results.Status {
		m := map[string]results.Status{}
		for _, v := range r.Verdicts {
			m[v.Cell+": "+v.Claim] = v.Status
		}
		return m
	}
	va, vb := verdicts(a), verdicts(b)
	ran := map[string]bool{}
	for _, c := range b.Cells {
		ran[c.Name] = true
	}
	compared := 0
	for _, v := range a.Verdicts { // the claims about cells both backends ran
		if !ran[v.Cell] {
			delete(va, v.Cell+": "+v.Claim)
		}
	}
	if len(va) != len(vb) {
		t.Errorf("%s checked %d claims about the cells %s ran, %s %d", first, len(va), other, other, len(vb))
	}
	for claim, status := range va {
		compared++
		if got, ok := vb[claim]; !ok || got != status {
			t.Errorf("%q: %s says %s, %s says %s (present: %v)", claim, first, status, other, got, ok)
		}
	}
	t.Logf("%d claims compared over %d cells", compared, len(ran))
}

// agreeBackendCells are the reload.yaml cells TestReloadBackendsAgree's quick mode runs on the second backend.
// Every claim about them names only cells in the list (better_than legacy).
var agreeBackendCells = []string{"baseline", "legacy", "socket-transfer", "tcp_migrate_req", "syn-drop",
	"legacy-wan", "tengine"}

// TestAgreeBackendCells checks, without privileges, that the quick mode's cells exist in reload.yaml, and that
// every claim about one of them compares it only with cells in the list (else the second backend would check
// a claim it cannot decide).
func TestAgreeBackendCells(t *testing.T) {
	s, err := spec.Load("reload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]bool{}
	for _, c := range agreeBackendCells {
		in[c] = true
	}
	exist := map[string]bool{}
	for _, c := range spec.Expand(s, false) {
		exist[c.Name] = true
	}
	for _, c := range agreeBackendCells {
		if !exist[c] {
			t.Errorf("agreeBackendCells names %q: reload.yaml has no such cell", c)
		}
	}
	for _, e := range s.Expect {
		for _, other := range []string{e.BetterThan, e.FewerResetsThan} {
			if in[e.Cell] && other != "" && !in[other] {
				t.Errorf("a claim compares %s with %s: %s is not in agreeBackendCells", e.Cell, other, other)
			}
		}
	}
}
