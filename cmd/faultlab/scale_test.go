package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/faultlab/faultlab/harness/runner"
	"github.com/faultlab/faultlab/harness/spec"
	"go.yaml.in/yaml/v3"
)

// TestRunSetAndShardFlags: --set (repeatable) crosses the scenario's cells with each sysctl axis, --shard
// becomes the runner's shard; both may follow the file.
func TestRunSetAndShardFlags(t *testing.T) {
	f, file, err := parseRunFlags("run", []string{"../../scenarios/shard.yaml", "--set",
		"proxy:net.ipv4.tcp_fin_timeout=30,60", "--shard", "2/3", "--set=proxy:net.core.somaxconn=128,4096"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := spec.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.addAxes(s); err != nil {
		t.Fatal(err)
	}
	if err := spec.Check(s, runner.Vocabulary()); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range spec.Expand(s, false) {
		if c.Rep == 0 {
			names = append(names, c.Name)
		}
	}
	slices.Sort(names)
	want := []string{"narrow.tcp_fin_timeout-30.somaxconn-128", "narrow.tcp_fin_timeout-30.somaxconn-4096",
		"narrow.tcp_fin_timeout-60.somaxconn-128", "narrow.tcp_fin_timeout-60.somaxconn-4096",
		"wide.tcp_fin_timeout-30.somaxconn-128", "wide.tcp_fin_timeout-30.somaxconn-4096",
		"wide.tcp_fin_timeout-60.somaxconn-128", "wide.tcp_fin_timeout-60.somaxconn-4096"}
	if !slices.Equal(names, want) {
		t.Errorf("cells %v\nwant %v", names, want)
	}
	if axes := s.MatrixAxes(); len(axes) != 3 || axes[2].Name != "somaxconn" {
		t.Errorf("axes %+v", axes)
	}
	o, err := f.shardOptions(f.options())
	if err != nil || o.Shard == nil || *o.Shard != (runner.Shard{Index: 2, Count: 3}) {
		t.Errorf("shard %v, %v", o.Shard, err)
	}
	f.sets = listFlag{"proxy:net.ipv4.tcp_tw_recycle=0,1"}
	s, _ = spec.Load(file)
	if err := f.addAxes(s); err == nil || !strings.Contains(err.Error(), "tcp_tw_recycle was removed in Linux 4.12") {
		t.Errorf("--set of a removed sysctl: %v", err)
	}
}

// k8sDocs renders the Job for shard.yaml and decodes its two documents.
func k8sDocs(t *testing.T, f *k8sFlags) (cm, job map[string]any) {
	t.Helper()
	src, err := os.ReadFile("../../scenarios/shard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeK8sJob(&buf, f, "shard", "shard.yaml", string(src)); err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(&buf)
	if err := dec.Decode(&cm); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&job); err != nil {
		t.Fatal(err)
	}
	if data := dig(t, cm, "data", "shard.yaml"); data != string(src) {
		t.Errorf("the ConfigMap does not hold the scenario file as it is")
	}
	return cm, job
}

// dig follows keys (and list indices) through decoded YAML.
func dig(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a mapping at %q", path, k)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v: no item %d", path, k)
			}
			v = l[k]
		}
	}
	return v
}

// TestK8sJob: the Indexed Job has one completion per shard, runs privileged, maps each completion index to
// its shard (the shell command is run here with each index), writes to the results volume and reads the
// scenario from the ConfigMap.
func TestK8sJob(t *testing.T) {
	const n = 2
	_, job := k8sDocs(t, &k8sFlags{shards: n, cpus: 2, image: "registry.example/faultlab:1", claim: "lab-results",
		sets: listFlag{"proxy:net.ipv4.tcp_fin_timeout=30,60"}})
	js := dig(t, job, "spec").(map[string]any)
	if job["kind"] != "Job" || job["apiVersion"] != "batch/v1" || js["completionMode"] != "Indexed" ||
		js["completions"] != n || js["parallelism"] != n || js["backoffLimit"] != 0 {
		t.Errorf("job %v: want an Indexed Job of %d completions, no retries", js, n)
	}
	pod := dig(t, js, "template", "spec")
	c := dig(t, pod, "containers", 0)
	if dig(t, c, "securityContext", "privileged") != true || dig(t, pod, "restartPolicy") != "Never" {
		t.Errorf("the shard's container is not privileged, or restarts")
	}
	mounts := map[string]string{}
	for _, m := range dig(t, c, "volumeMounts").([]any) {
		mounts[dig(t, m, "name").(string)] = dig(t, m, "mountPath").(string)
	}
	vols := map[string]any{}
	for _, v := range dig(t, pod, "volumes").([]any) {
		vols[dig(t, v, "name").(string)] = v
	}
	if mounts["results"] != "/results" || dig(t, vols["results"], "persistentVolumeClaim", "claimName") != "lab-results" ||
		mounts["scenario"] != "/scenario" || dig(t, vols["scenario"], "configMap", "name") != "faultlab-shard-scenario" {
		t.Errorf("mounts %v, volumes %v", mounts, vols)
	}
	if dig(t, pod, "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution", 0, "topologyKey") !=
		"kubernetes.io/hostname" {
		t.Errorf("shards may share a node")
	}
	cmd := dig(t, c, "command").([]any)
	script := dig(t, c, "args", 0).(string)
	if len(cmd) != 2 || cmd[0] != "/bin/sh" || cmd[1] != "-c" || !strings.HasPrefix(script, "exec faultlab run ") {
		t.Fatalf("command %v %q", cmd, script)
	}
	for index := range n {
		// the pod's shell, with faultlab replaced by a printer of its arguments
		sh := exec.Command("/bin/sh", "-c", strings.Replace(script, "exec faultlab", `printf '%s\n'`, 1))
		sh.Env = append(os.Environ(), fmt.Sprintf("JOB_COMPLETION_INDEX=%d", index))
		out, err := sh.Output()
		if err != nil {
			t.Fatal(err)
		}
		args := strings.Split(strings.TrimSpace(string(out)), "\n")
		f, file, err := parseRunFlags(args[0], args[1:])
		if err != nil {
			t.Fatalf("index %d: the pod's arguments %q: %v", index, args, err)
		}
		sh2, err := runner.ParseShard(f.shard)
		if err != nil || sh2 != (runner.Shard{Index: index + 1, Count: n}) {
			t.Errorf("completion index %d runs shard %q (%v), want %d/%d", index, f.shard, err, index+1, n)
		}
		if file != "/scenario/shard.yaml" || f.out != "/results/faultlab-shard" ||
			!slices.Equal(f.sets, listFlag{"proxy:net.ipv4.tcp_fin_timeout=30,60"}) {
			t.Errorf("index %d: file %s, out %s, sets %v", index, file, f.out, f.sets)
		}
	}
}

// TestMatrixWorkflow: the GitHub Actions workflow is valid YAML, its shard matrix is 1..SHARDS, each shard
// job runs --shard "<matrix.shard>/<SHARDS>", and the merge job waits for the shards and merges them all.
func TestMatrixWorkflow(t *testing.T) {
	b, err := os.ReadFile("../../.github/workflows/matrix.yml")
	if err != nil {
		t.Fatal(err)
	}
	var wf map[string]any
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatalf("matrix.yml is not valid YAML: %v", err)
	}
	n, ok := dig(t, wf, "env", "SHARDS").(int)
	if !ok || n < 1 {
		t.Fatalf("env.SHARDS %v", dig(t, wf, "env", "SHARDS"))
	}
	shards := dig(t, wf, "jobs", "shard", "strategy", "matrix", "shard").([]any)
	for i, s := range shards {
		sh, err := runner.ParseShard(fmt.Sprintf("%v/%d", s, n))
		if err != nil || sh.Index != i+1 {
			t.Errorf("matrix shard[%d] = %v: want %d (%v)", i, s, i+1, err)
		}
	}
	if len(shards) != n {
		t.Errorf("the shard matrix has %d entries, SHARDS is %d", len(shards), n)
	}
	var run, merge string
	for _, st := range dig(t, wf, "jobs", "shard", "steps").([]any) {
		if r, _ := st.(map[string]any)["run"].(string); strings.Contains(r, "faultlab run") {
			run = r
		}
	}
	for _, st := range dig(t, wf, "jobs", "merge", "steps").([]any) {
		if r, _ := st.(map[string]any)["run"].(string); strings.Contains(r, "faultlab merge") {
			merge = r
		}
	}
	if !strings.Contains(run, `--shard "${{ matrix.shard }}/${{ env.SHARDS }}"`) {
		t.Errorf("the shard job's run does not pass --shard matrix.shard/SHARDS: %q", run)
	}
	if dig(t, wf, "jobs", "merge", "needs") != "shard" || !strings.Contains(merge, "shards/*/*/*") {
		t.Errorf("the merge job: needs %v, run %q", dig(t, wf, "jobs", "merge", "needs"), merge)
	}
	// the default scenario, in the default (long) mode, has enough rounds for every shard
	s, err := spec.Load("../../scenarios/reload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	unit, units, err := runner.ShardUnits(s, runner.Options{Long: true})
	if err != nil || unit != runner.ShardByRound || units < n {
		t.Errorf("reload.yaml --long: %d %ss (%v) for %d shards", units, unit, err, n)
	}
}
