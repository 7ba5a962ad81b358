package scenarios

import (
	"testing"

	"github.com/faultlab/faultlab/capture"
	"github.com/faultlab/faultlab/harness/docker"
	"github.com/faultlab/faultlab/harness/docker/dockertest"
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
// engine and the lab's images (`make images`).
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
	b := runScenario(t, "reload.yaml", other)
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
	if len(va) != len(vb) {
		t.Errorf("%s checked %d claims, %s %d", first, len(va), other, len(vb))
	}
	for claim, status := range va {
		if got, ok := vb[claim]; !ok || got != status {
			t.Errorf("%q: %s says %s, %s says %s (present: %v)", claim, first, status, other, got, ok)
		}
	}
}
