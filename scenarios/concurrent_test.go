package scenarios

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/capture"
	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/docker"
	"github.com/faultlab/faultlab/harness/docker/dockertest"
	"github.com/faultlab/faultlab/harness/runner"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/harness/testutil"
	"github.com/faultlab/faultlab/results"
	"github.com/moby/moby/client"
	"golang.org/x/sync/errgroup"
)

// concurrentFile is the scenario TestConcurrentRuns runs twice at once: HAProxy in front of nginx at 300
// conn/s for 3 s, without reloads, with legacy reloads and with socket-transfer reloads every 200 ms, and a
// capture of every SYN toward the proxy's frontend.
const concurrentFile = "testdata/concurrent.yaml"

// TestConcurrentRuns runs the same scenario twice at once in this process (two runner.New, two Run in
// goroutines, the same output directory) on each backend, and checks that the runs stay apart: distinct ids,
// directories and lab names; each results.json has every cell with exactly the pacer's rate x duration
// attempts, its verdicts pass and its load generator kept up; each records.jsonl holds its own cell's
// attempts, each sequence number once; each run's proxy saw the SYNs of exactly its own client's attempts
// (its capture's source ports are its records' local ports); and nothing of either lab is left.
func TestConcurrentRuns(t *testing.T) {
	testutil.RequireRoot(t)
	for _, backend := range []string{"netns", "docker"} {
		t.Run(backend, func(t *testing.T) {
			if backend == "docker" {
				dockertest.RequireDocker(t)
				dockertest.RequireImages(t, docker.HAProxyImage, docker.NginxImage, docker.ToolsImage)
			}
			concurrentRuns(t, backend)
		})
	}
}

func concurrentRuns(t *testing.T, backend string) {
	out := t.TempDir()
	var runs [2]*runner.Runner
	for i := range runs {
		s, err := spec.Load(concurrentFile)
		if err != nil {
			t.Fatal(err)
		}
		if runs[i], err = runner.New(s, runner.Options{Backend: backend, OutDir: out}); err != nil {
			t.Fatal(err)
		}
		t.Logf("run %d: id %s, directory %s", i, runs[i].ID, runs[i].Dir)
	}
	if runs[0].ID == runs[1].ID || runs[0].Dir == runs[1].Dir {
		t.Fatalf("two runs share an id or a directory: %s %s, %s %s", runs[0].ID, runs[0].Dir, runs[1].ID,
			runs[1].Dir)
	}
	var reps [2]*results.Report
	var g errgroup.Group
	start := time.Now()
	for i, r := range runs {
		g.Go(func() error {
			rep, err := r.Run(context.Background(), nil)
			reps[i] = rep
			if err != nil {
				return fmt.Errorf("run %s: %w", r.ID, err)
			}
			return nil
		})
	}
	err := g.Wait()
	t.Logf("both runs done in %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var ports [2]map[string]map[int]bool
	for i, r := range runs {
		if reps[i] == nil {
			t.Fatalf("run %s: no report", r.ID)
		}
		ports[i] = checkConcurrentRun(t, r)
	}
	for cell, a := range ports[0] {
		shared := 0
		for p := range a {
			if ports[1][cell][p] {
				shared++
			}
		}
		t.Logf("cell %s: the runs' clients used %d and %d source ports, %d of them both", cell, len(a),
			len(ports[1][cell]), shared)
	}
	for _, r := range runs {
		if left := labLeftovers(t, r, out); len(left) > 0 {
			t.Errorf("run %s left %s", r.ID, strings.Join(left, ", "))
		}
	}
}

// checkConcurrentRun checks one run's directory: results.json, records and captures. It returns each cell's
// source ports.
func checkConcurrentRun(t *testing.T, r *runner.Runner) map[string]map[int]bool {
	t.Helper()
	rep, err := results.ReadReport(filepath.Join(r.Dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	byCell := map[string]map[int]bool{}
	meta, err := results.ReadRunMeta(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if meta.ID != r.ID || rep.Env["run_dir"] != r.Dir {
		t.Errorf("run %s: run.json says id %s, results.json run_dir %v", r.ID, meta.ID, rep.Env["run_dir"])
	}
	w := r.Scenario.Workload
	want := int(w.Rate * w.Duration.Seconds()) // the pacer's count: exact when rate x duration is whole
	cells := r.Cells()
	if len(rep.Cells) != len(cells) {
		t.Errorf("run %s: %d cells in results.json, want %d", r.ID, len(rep.Cells), len(cells))
	}
	for _, c := range cells {
		cr := rep.Cell(c.Name)
		switch {
		case cr == nil || cr.Stats == nil:
			t.Errorf("run %s: cell %s missing from results.json", r.ID, c.Name)
			continue
		case cr.Stats.Attempts != want:
			t.Errorf("run %s: cell %s: %d attempts, want %.0f/s x %s = %d", r.ID, c.Name, cr.Stats.Attempts,
				w.Rate, w.Duration, want)
		}
		if s := cr.Behind(); s != "" {
			t.Errorf("run %s: cell %s: %s", r.ID, c.Name, s)
		}
		t.Logf("run %s: cell %s: %d attempts, %d failed, %d reloads", r.ID, c.Name, cr.Stats.Attempts,
			cr.Stats.Failures, cr.Stats.Reloads)
		dir := results.CellDir(r.Dir, c.Name, c.Rep)
		byCell[c.Name] = checkRecords(t, dir, c.Name, want)
		checkSYNs(t, dir, byCell[c.Name])
	}
	if len(rep.Verdicts) != len(r.Scenario.Expect) {
		t.Errorf("run %s: %d verdicts, want %d", r.ID, len(rep.Verdicts), len(r.Scenario.Expect))
	}
	unmet, _ := results.Unmet(rep.Verdicts, false)
	for _, v := range unmet {
		t.Errorf("run %s: %s: %s: %s: %s", r.ID, v.Status, v.Cell, v.Claim, v.Detail)
	}
	return byCell
}

// checkRecords checks that a cell's records.jsonl holds want records of that cell, sequence numbers 0 to
// want-1 once each, and returns their local ports.
func checkRecords(t *testing.T, dir, cell string, want int) map[int]bool {
	t.Helper()
	seqs := map[uint64]bool{}
	ports := map[int]bool{}
	n := 0
	err := results.ReadRecords(filepath.Join(dir, "records.jsonl"), func(rec *results.Record) error {
		n++
		if rec.Cell != cell || seqs[rec.Seq] || rec.Seq >= uint64(want) {
			return fmt.Errorf("record %d: cell %s seq %d: not one of this cell's %d attempts", n, rec.Cell,
				rec.Seq, want)
		}
		seqs[rec.Seq] = true
		if rec.LocalPort == 0 {
			return fmt.Errorf("record %d (seq %d): no local port", n, rec.Seq)
		}
		ports[rec.LocalPort] = true
		return nil
	})
	if err != nil {
		t.Errorf("%s: %v", dir, err)
	}
	if n != want {
		t.Errorf("%s: %d records, want %d", dir, n, want)
	}
	return ports
}

// checkSYNs checks that the connections whose SYNs the proxy's capture saw come from exactly the local ports
// of the cell's records (as sets: the kernel may hand a port out twice in one cell): each run's proxy served
// its own client and nobody else. The two runs' clients share few ports (measured: 0-58 of ~900 per cell), so
// a connection from the other run shows up as a port not in the records.
func checkSYNs(t *testing.T, dir string, ports map[int]bool) {
	t.Helper()
	seen := map[int]bool{}
	_, err := capture.AnalyseFile(filepath.Join(dir, "proxy-eth0.pcap"), capture.Options{OnConn: func(c capture.Conn) {
		seen[int(c.Initiator.Addr.Port())] = true
	}})
	if err != nil {
		t.Error(err)
		return
	}
	var foreign, missing []string
	for p := range seen {
		if !ports[p] {
			foreign = append(foreign, strconv.Itoa(p))
		}
	}
	for p := range ports {
		if !seen[p] {
			missing = append(missing, strconv.Itoa(p))
		}
	}
	if len(foreign)+len(missing) > 0 {
		t.Errorf("%s: the proxy saw SYNs from %d ports, the records have %d; %d not in the records (%s), %d "+
			"records whose SYN the proxy did not see (%s)", dir, len(seen), len(ports), len(foreign),
			firstFew(foreign), len(missing), firstFew(missing))
	}
}

func firstFew(s []string) string {
	if len(s) > 5 {
		return strings.Join(s[:5], " ") + " ..."
	}
	return strings.Join(s, " ")
}

// labLeftovers lists what of run r's lab is left: namespaces, containers and networks with its prefix, and
// live processes naming the output directory (the daemons' configurations live there).
func labLeftovers(t *testing.T, r *runner.Runner, out string) []string {
	t.Helper()
	prefix := harness.PrefixBase + r.ID
	var left []string
	ns, _ := filepath.Glob(filepath.Join("/var/run/netns", prefix+"-*"))
	for _, p := range ns {
		left = append(left, "namespace "+filepath.Base(p))
	}
	if r.Backend() == "docker" {
		left = append(left, dockerLeftovers(t, prefix)...)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), out) {
			left = append(left, "process "+e.Name()+" "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return left
}

// dockerLeftovers lists the containers and networks labelled with prefix.
func dockerLeftovers(t *testing.T, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f := client.Filters{}.Add("label", docker.LabelRun+"="+prefix)
	ctrs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	nets, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, x := range ctrs.Items {
		left = append(left, "container "+strings.Join(x.Names, ","))
	}
	for _, n := range nets.Items {
		left = append(left, "network "+n.Name)
	}
	return left
}
