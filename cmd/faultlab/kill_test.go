package main

import (
	"bufio"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/docker"
	"github.com/faultlab/faultlab/harness/docker/dockertest"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/harness/testutil"
	"github.com/faultlab/faultlab/results"
)

// TestKillThenClean runs `faultlab up` on the Reload scenario, SIGKILLs it once the lab is up (so none of its
// own cleanup runs), and checks that `faultlab clean` removes every namespace and process the lab left, and
// that the root namespace's sysctls, nftables ruleset, qdiscs and links are as they were before.
func TestKillThenClean(t *testing.T) {
	testutil.RequireRoot(t)
	before, err := harness.SnapshotRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := buildFaultlab(t)
	up := exec.Command(bin, "up", "--out", t.TempDir(), "--cells", "legacy", "../../scenarios/reload.yaml")
	stdout, _ := up.StdoutPipe()
	up.Stderr = os.Stderr
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	id := waitUp(t, stdout)
	nsPaths, _ := filepath.Glob("/var/run/netns/" + harness.PrefixBase + id + "-*")
	if len(nsPaths) < 4 {
		t.Fatalf("want 4 namespaces (router + 3 hosts) of run %s, got %v", id, nsPaths)
	}
	pids := pidsIn(t, nsPaths)
	if len(pids) < 2 {
		t.Fatalf("want haproxy and nginx processes inside the lab, got %v", pids)
	}
	_ = up.Process.Signal(syscall.SIGKILL)
	_ = up.Wait()
	if left, _ := filepath.Glob("/var/run/netns/" + harness.PrefixBase + id + "-*"); len(left) == 0 {
		t.Fatal("SIGKILL left nothing behind: the test proves nothing")
	}
	if out, err := exec.Command(bin, "clean").CombinedOutput(); err != nil {
		t.Fatalf("faultlab clean: %v\n%s", err, out)
	}
	if left, _ := filepath.Glob("/var/run/netns/" + harness.PrefixBase + id + "-*"); len(left) > 0 {
		t.Errorf("namespaces left after clean: %v", left)
	}
	checkGone(t, pids, "run "+id)
	after, err := harness.SnapshotRoot()
	if err != nil {
		t.Fatal(err)
	}
	if d := harness.Diff(before, after); len(d) > 0 {
		t.Errorf("root namespace changed:\n%s", strings.Join(d, "\n"))
	}
}

// killScenario is the run TestKillRun interrupts: two cells of 2 s of HTTP load through haproxy with a reload
// storm and a capture, so that setup (namespaces or containers, nginx, haproxy), load (the pacer, reloads,
// capture) and teardown (stopping the storm, the capture and the daemons, removing the lab, the capture
// analysis, cell.json) each take long enough to be hit.
const killScenario = "testdata/kill.yaml"

// epochDelay is how long after creating records.jsonl the runner starts the pacer's schedule (its epoch,
// harness/runner/cell.go: now + warmup + 50ms): the faults and probes start in between.
const epochDelay = 50 * time.Millisecond

// killQuota is how many kills each backend gets per phase (at least; a kill that lands in another phase
// than planned is counted where it landed, and more are drawn until every phase has its quota).
var killQuota = map[string]int{"netns": 5, "docker": 4}

// TestKillRun SIGKILLs `faultlab run` at random points of setup, load and teardown, on both backends, then
// runs `faultlab clean` and checks that nothing of the lab is left (namespaces, processes, containers,
// networks; the root namespace's sysctls, nftables ruleset, links, addresses, routes and qdiscs unchanged)
// and that what the run wrote so far is usable: every records.jsonl and reloads.jsonl parses (a truncated
// last line is allowed) and `faultlab report RUN_DIR` rebuilds results.json with exactly the records kept.
//
// Each backend first runs the scenario to the end, timing each cell's phases from its run directory (the
// cell's directory appears, then records.jsonl, then, after the schedule, cell.json); kill points are then
// drawn (seeded; the seed is printed, FAULTLAB_KILL_SEED replays it) as a phase, a cell and a fraction of that
// phase's measured length, and fired relative to the live run's own phase start. Each kill is classified by
// what the run directory showed at that moment.
func TestKillRun(t *testing.T) {
	testutil.RequireRoot(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FAULTLAB_KILL_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("FAULTLAB_KILL_SEED: %v", err)
		}
	}
	t.Logf("kill points seed %d (replay with FAULTLAB_KILL_SEED=%d)", seed, seed)
	s, err := spec.Load(killScenario)
	if err != nil {
		t.Fatal(err)
	}
	var cells []string
	for _, c := range spec.Expand(s, false) {
		cells = append(cells, c.Name)
	}
	bin := buildFaultlab(t)
	total := 0
	for i, backend := range []string{"netns", "docker"} {
		t.Run(backend, func(t *testing.T) {
			if backend == "docker" {
				dockertest.RequireDocker(t)
				dockertest.RequireImages(t, docker.ToolsImage, docker.HAProxyImage, docker.NginxImage)
			}
			k := &killer{t: t, bin: bin, backend: backend, cells: cells, dur: s.Workload.Duration,
				rng: rand.New(rand.NewPCG(seed, uint64(i)))}
			total += k.campaign(killQuota[backend])
		})
	}
	t.Logf("%d kills in all", total)
}

// phase is where a cell was when the run was killed.
type phase string

const (
	phaseSetup    phase = "setup"    // the cell's directory exists, its records.jsonl not yet: lab, services
	phaseLoad     phase = "load"     // records.jsonl exists and the pacer's schedule has not ended
	phaseTeardown phase = "teardown" // the schedule has ended, cell.json is not written yet
	phaseDone     phase = "done"     // cell.json is written: the planned cell had ended
)

var phases = []phase{phaseSetup, phaseLoad, phaseTeardown}

// cellTimes are when a cell's files first appeared, since the run started (0: not seen).
type cellTimes struct{ dir, recs, done time.Duration }

// killPoint is one planned kill: frac of the phase's measured length into that phase of cell.
type killPoint struct {
	phase phase
	cell  int
	frac  float64
}

// killer runs one backend's kill campaign.
type killer struct {
	t       *testing.T
	bin     string
	backend string
	cells   []string
	dur     time.Duration
	rng     *rand.Rand
	// setup and teardown are each cell's phase lengths, measured by the complete run.
	setup, teardown []time.Duration
}

// campaign times a complete run, then kills runs until every phase has quota kills, and returns the number
// of kills.
func (k *killer) campaign(quota int) int {
	t := k.t
	k.calibrate()
	var plan []killPoint
	for _, ph := range phases {
		for i := range quota {
			plan = append(plan, killPoint{phase: ph, cell: i % len(k.cells), frac: 0.1 + 0.8*k.rng.Float64()})
		}
	}
	got := map[phase]int{}
	n, dirty := 0, 0
	for len(plan) > 0 && n < 3*quota*len(phases) {
		p := plan[0]
		plan = plan[1:]
		n++
		landed, leftSome := k.killAndCheck(n, p)
		got[landed]++
		if leftSome {
			dirty++
		}
		if landed != p.phase && got[p.phase]+countPhase(plan, p.phase) < quota {
			plan = append(plan, killPoint{phase: p.phase, cell: p.cell, frac: 0.1 + 0.8*k.rng.Float64()})
		}
	}
	for _, ph := range phases {
		if got[ph] < quota {
			t.Errorf("%d kills landed in %s, want %d (measured lengths: setup %v, teardown %v)", got[ph], ph,
				quota, k.setup, k.teardown)
		}
	}
	if dirty == 0 {
		t.Errorf("no kill left anything for clean to remove: the kills prove nothing")
	}
	t.Logf("%s: %d kills: %d in setup, %d in load, %d in teardown; %d left something for clean", k.backend, n,
		got[phaseSetup], got[phaseLoad], got[phaseTeardown], dirty)
	return n
}

func countPhase(plan []killPoint, ph phase) int {
	n := 0
	for _, p := range plan {
		if p.phase == ph {
			n++
		}
	}
	return n
}

// calibrate runs the scenario to its end, measures each cell's setup and teardown, and checks that a run that
// ends by itself leaves nothing behind.
func (k *killer) calibrate() {
	t := k.t
	before := snapshotRoot(t)
	r := k.start()
	for !r.exited() {
		r.observe()
		time.Sleep(2 * time.Millisecond)
	}
	if err := r.wait(); err != nil {
		t.Fatalf("complete run: %v\n%s", err, r.output())
	}
	for i, c := range r.times {
		if c.recs == 0 || c.done == 0 {
			t.Fatalf("complete run: cell %s: records.jsonl or cell.json not seen (%+v)", k.cells[i], c)
		}
		k.setup = append(k.setup, c.recs-c.dir)
		k.teardown = append(k.teardown, c.done-(c.recs+epochDelay+k.dur))
		if k.teardown[i] <= 0 {
			t.Fatalf("complete run: cell %s: cell.json %v after records.jsonl: not after the %v schedule",
				k.cells[i], c.done-c.recs, k.dur)
		}
	}
	t.Logf("%s: complete run %s: setup %v, teardown %v per cell", k.backend, r.took().Round(time.Millisecond),
		roundAll(k.setup), roundAll(k.teardown))
	left := k.snapLab(r)
	if !left.empty() {
		t.Errorf("a complete run left %s", left)
	}
	k.checkClean(r, left, before)
	k.checkRunDir(r)
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// killAndCheck kills a run at p, cleans up and checks. It returns the phase the kill landed in and whether
// the kill left something for clean to remove.
func (k *killer) killAndCheck(n int, p killPoint) (phase, bool) {
	t := k.t
	before := snapshotRoot(t)
	r := k.start()
	at, landed := k.killAt(r, p)
	left := k.snapLab(r)
	t.Logf("kill %2d: %-8s %-15s planned %-8s +%3.0f%%: at %6v, landed in %-8s; left %s", n, k.backend,
		k.cells[p.cell], p.phase, 100*p.frac, at.Round(time.Millisecond), landed, left)
	k.clean()
	k.checkClean(r, left, before)
	k.checkRunDir(r)
	return landed, !left.empty()
}

// killAt waits for p's moment in the live run, classifies where the planned cell is, and SIGKILLs the run.
func (k *killer) killAt(r *labRun, p killPoint) (time.Duration, phase) {
	t := k.t
	for {
		r.observe()
		c := r.times[p.cell]
		var start, length time.Duration
		switch p.phase {
		case phaseSetup:
			start, length = c.dir, k.setup[p.cell]
		case phaseLoad:
			start, length = c.recs, epochDelay+k.dur
		case phaseTeardown:
			start, length = c.recs+epochDelay+k.dur, k.teardown[p.cell]
			if c.recs == 0 {
				start = 0
			}
		}
		if start > 0 && r.elapsed() >= start+time.Duration(p.frac*float64(length)) {
			break
		}
		if r.exited() { // the last cell's teardown was shorter than measured: no kill, nothing to classify
			if err := r.wait(); err != nil {
				t.Errorf("the run, not killed, failed: %v\n%s", err, r.output())
			}
			return r.elapsed(), phaseDone
		}
		time.Sleep(time.Millisecond)
	}
	r.observe()
	at := r.elapsed()
	c := r.times[p.cell]
	landed := phaseTeardown
	switch {
	case c.done > 0:
		landed = phaseDone
	case c.recs == 0:
		landed = phaseSetup
	case at < c.recs+epochDelay+k.dur:
		landed = phaseLoad
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	if err := r.wait(); err == nil {
		return at, phaseDone // the run ended by itself just before the kill
	}
	return at, landed
}

// clean runs `faultlab clean`, which must succeed.
func (k *killer) clean() {
	out, err := exec.Command(k.bin, "clean").CombinedOutput()
	if err != nil {
		k.t.Errorf("faultlab clean: %v\n%s", err, out)
	}
}

// checkClean checks that nothing of r's lab is left: no namespace, container or network with its prefix, none
// of the processes left before clean (nor any other in their namespaces, nor any whose command line names the
// run's directory), and the root namespace as before.
func (k *killer) checkClean(r *labRun, was labState, before harness.RootState) {
	t := k.t
	t.Helper()
	if now := k.snapLab(r); !now.empty() {
		t.Errorf("after clean, run %s left %s", r.prefix(), now)
	}
	checkGone(t, was.pids, "run "+r.prefix())
	if pids := pidsInIDs(was.netns); len(pids) > 0 {
		t.Errorf("after clean, processes %v still in the namespaces of run %s", pids, r.prefix())
	}
	if d := harness.Diff(before, snapshotRoot(t)); len(d) > 0 {
		t.Errorf("root namespace changed by run %s:\n%s", r.prefix(), strings.Join(d, "\n"))
	}
}

// checkRunDir checks that every records.jsonl and reloads.jsonl of r parses (a truncated last line is allowed)
// and that `faultlab report` rebuilds the report with exactly the records kept.
func (k *killer) checkRunDir(r *labRun) {
	t := k.t
	t.Helper()
	dir := r.runDir()
	if dir == "" {
		t.Errorf("run %d: no run directory", r.cmd.Process.Pid)
		return
	}
	counts := map[string]int{}
	recs, _ := filepath.Glob(filepath.Join(dir, "*", "rep*", "records.jsonl"))
	for _, f := range recs {
		cell := filepath.Base(filepath.Dir(filepath.Dir(f)))
		err := results.ReadRecords(f, func(*results.Record) error { counts[cell]++; return nil })
		switch {
		case errors.Is(err, results.ErrTruncated):
			t.Logf("%s: %v (allowed)", f, err)
		case err != nil:
			t.Errorf("records of a killed run do not parse: %v", err)
		}
	}
	reloads, _ := filepath.Glob(filepath.Join(dir, "*", "rep*", "reloads.jsonl"))
	for _, f := range reloads {
		if _, err := results.ReadReloads(f); err != nil && !errors.Is(err, results.ErrTruncated) {
			t.Errorf("reloads of a killed run do not parse: %v", err)
		}
	}
	if out, err := exec.Command(k.bin, "report", dir).CombinedOutput(); err != nil {
		t.Errorf("faultlab report %s: %v\n%s", dir, err, out)
		return
	}
	rep, err := results.ReadReport(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Errorf("results.json rebuilt by faultlab report: %v", err)
		return
	}
	for _, c := range rep.Cells {
		if c.Stats != nil && c.Stats.Attempts != counts[c.Name] {
			t.Errorf("report of %s: cell %s has %d attempts, records.jsonl has %d records", dir, c.Name,
				c.Stats.Attempts, counts[c.Name])
		}
		delete(counts, c.Name)
	}
	for cell, n := range counts {
		if n > 0 {
			t.Errorf("report of %s: cell %s (%d records) missing", dir, cell, n)
		}
	}
}

func snapshotRoot(t *testing.T) harness.RootState {
	t.Helper()
	s, err := harness.SnapshotRoot()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// buildFaultlab builds the faultlab binary into a temporary directory.
func buildFaultlab(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "faultlab")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// waitUp reads `faultlab up` output until the lab is up and returns the run id.
func waitUp(t *testing.T, r interface{ Read([]byte) (int, error) }) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("faultlab up exited before the lab was up")
			}
			if f := strings.Fields(l); len(f) > 2 && f[0] == "lab" && f[2] == "up" {
				go func() {
					for range lines {
					}
				}()
				return f[1]
			}
		case <-ctx.Done():
			t.Fatal("faultlab up: no 'lab ID up' line within 60s")
		}
	}
}
