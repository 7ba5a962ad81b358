package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/faultlab/faultlab/harness/runner"
	"github.com/faultlab/faultlab/harness/spec"
	"go.yaml.in/yaml/v3"
)

// k8sFlags are the settings of `faultlab k8s-job`.
type k8sFlags struct {
	shards, cpus int
	image, name  string
	claim        string
	long         bool
	seed         int64
	sets         listFlag
}

// cmdK8sJob prints a Kubernetes Indexed Job that runs a scenario in N shards, one per completion index, and
// the ConfigMap holding the scenario file.
func cmdK8sJob(args []string) error {
	f, file, err := parseK8sFlags(args)
	if err != nil {
		return err
	}
	s, err := spec.Load(file)
	if err != nil {
		return err
	}
	rf := &runFlags{sets: f.sets}
	if err := rf.addAxes(s); err != nil {
		return err
	}
	unit, units, err := runner.ShardUnits(s, runner.Options{Long: f.long, Seed: f.seed})
	if err != nil {
		return err
	}
	if f.shards > units {
		return fmt.Errorf("k8s-job: --shards %d: the run has %d %ss; use at most %d shards", f.shards, units, unit, units)
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("k8s-job: %w", err)
	}
	return writeK8sJob(os.Stdout, f, s.Name, filepath.Base(file), string(src))
}

func parseK8sFlags(args []string) (*k8sFlags, string, error) {
	fs := flag.NewFlagSet("k8s-job", flag.ContinueOnError)
	f := &k8sFlags{}
	fs.IntVar(&f.shards, "shards", 2, "number of shards: the Job's completions, one pod per completion index")
	fs.StringVar(&f.image, "image", "", "the image to run: faultlab and the scenario's daemons (docs/scale.md)")
	fs.StringVar(&f.name, "name", "", "the Job's name (default: faultlab-<scenario>)")
	fs.StringVar(&f.claim, "claim", "faultlab-results", "the PersistentVolumeClaim (ReadWriteMany) the shards write "+
		"their run directories to")
	fs.IntVar(&f.cpus, "cpus", 2, "CPUs each shard's pod requests and is limited to")
	fs.BoolVar(&f.long, "long", false, "run the scenario's long mode")
	fs.Int64Var(&f.seed, "seed", 0, "override the scenario's seed")
	fs.Var(&f.sets, "set", "HOST:SYSCTL=V1,V2: cross every cell with a sysctl axis (repeatable), as run --set")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: faultlab k8s-job FILE --image IMG [--shards N] [flags] > job.yaml")
		fs.PrintDefaults()
	}
	if err := parseInterspersed(fs, args); err != nil {
		return nil, "", err
	}
	switch {
	case fs.NArg() != 1:
		fs.Usage()
		return nil, "", errors.New("k8s-job: want exactly one scenario file")
	case f.image == "":
		return nil, "", errors.New("k8s-job: --image is required")
	case f.shards < 1 || f.shards > runner.MaxShards:
		return nil, "", fmt.Errorf("k8s-job: --shards %d out of range 1..%d", f.shards, runner.MaxShards)
	case f.cpus < 1:
		return nil, "", fmt.Errorf("k8s-job: --cpus %d must be >= 1", f.cpus)
	}
	return f, fs.Arg(0), nil
}

// Where the pods find the scenario and write their results.
const (
	k8sScenarioDir = "/scenario"
	k8sResultsDir  = "/results"
)

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// writeK8sJob writes the ConfigMap with the scenario file and the Indexed Job, as two YAML documents.
func writeK8sJob(w io.Writer, f *k8sFlags, scenario, base, src string) error {
	name := f.name
	if name == "" {
		name = strings.Trim(notDNS.ReplaceAllString("faultlab-"+strings.ToLower(scenario), "-"), "-")
	}
	labels := map[string]string{"app.kubernetes.io/name": "faultlab", "faultlab/scenario": scenario}
	cm := k8sObject{APIVersion: "v1", Kind: "ConfigMap", Metadata: k8sMeta{Name: name + "-scenario", Labels: labels},
		Data: map[string]string{base: src}}
	out := filepath.Join(k8sResultsDir, name)
	run := []string{"faultlab", "run", k8sScenarioDir + "/" + base, "-q", "--out", out,
		fmt.Sprintf(`--shard "$((JOB_COMPLETION_INDEX + 1))/%d"`, f.shards)}
	if f.long {
		run = append(run, "--long")
	}
	if f.seed != 0 {
		run = append(run, fmt.Sprintf("--seed %d", f.seed))
	}
	for _, s := range f.sets {
		run = append(run, "--set '"+strings.ReplaceAll(s, "'", `'\''`)+"'")
	}
	cpu := fmt.Sprint(f.cpus)
	job := k8sObject{APIVersion: "batch/v1", Kind: "Job", Metadata: k8sMeta{Name: name, Labels: labels,
		Annotations: map[string]string{"faultlab/merge": fmt.Sprintf("faultlab merge --out %s/merged %s/%s/*",
			out, out, scenario)}},
		Spec: &k8sJobSpec{CompletionMode: "Indexed", Completions: f.shards, Parallelism: f.shards, BackoffLimit: 0,
			Template: k8sPodTemplate{Metadata: k8sMeta{Labels: labels}, Spec: k8sPodSpec{
				RestartPolicy: "Never",
				Affinity: k8sAffinity{PodAntiAffinity: k8sAntiAffinity{Required: []k8sTerm{{
					LabelSelector: k8sSelector{MatchLabels: map[string]string{"job-name": name}},
					TopologyKey:   "kubernetes.io/hostname"}}}},
				Containers: []k8sContainer{{Name: "faultlab", Image: f.image,
					Command:         []string{"/bin/sh", "-c"},
					Args:            []string{"exec " + strings.Join(run, " ")},
					SecurityContext: k8sSecurity{Privileged: true},
					Resources: k8sResources{Requests: map[string]string{"cpu": cpu},
						Limits: map[string]string{"cpu": cpu}},
					VolumeMounts: []k8sMount{{Name: "scenario", MountPath: k8sScenarioDir, ReadOnly: true},
						{Name: "results", MountPath: k8sResultsDir}}}},
				Volumes: []k8sVolume{{Name: "scenario", ConfigMap: &k8sConfigMapRef{Name: name + "-scenario"}},
					{Name: "results", PersistentVolumeClaim: &k8sClaimRef{ClaimName: f.claim}}},
			}}}}
	fmt.Fprintf(w, "# faultlab k8s-job: scenario %s in %d shards (pod I runs --shard I+1/%d), results in the "+
		"volume claim %s under %s.\n# When the Job completes, merge from a pod that mounts the claim:\n#   %s\n",
		scenario, f.shards, f.shards, f.claim, out, job.Metadata.Annotations["faultlab/merge"])
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(cm); err != nil {
		return fmt.Errorf("k8s-job: %w", err)
	}
	if err := enc.Encode(job); err != nil {
		return fmt.Errorf("k8s-job: %w", err)
	}
	return enc.Close()
}

// The parts of the Kubernetes API the Job uses, in the order kubectl prints them.
type (
	k8sObject struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   k8sMeta           `yaml:"metadata"`
		Data       map[string]string `yaml:"data,omitempty"`
		Spec       *k8sJobSpec       `yaml:"spec,omitempty"`
	}
	k8sMeta struct {
		Name        string            `yaml:"name,omitempty"`
		Labels      map[string]string `yaml:"labels,omitempty"`
		Annotations map[string]string `yaml:"annotations,omitempty"`
	}
	k8sJobSpec struct {
		CompletionMode string         `yaml:"completionMode"`
		Completions    int            `yaml:"completions"`
		Parallelism    int            `yaml:"parallelism"`
		BackoffLimit   int            `yaml:"backoffLimit"` // 0: a failed shard is a result, not retried
		Template       k8sPodTemplate `yaml:"template"`
	}
	k8sPodTemplate struct {
		Metadata k8sMeta    `yaml:"metadata"`
		Spec     k8sPodSpec `yaml:"spec"`
	}
	k8sPodSpec struct {
		RestartPolicy string         `yaml:"restartPolicy"`
		Affinity      k8sAffinity    `yaml:"affinity"`
		Containers    []k8sContainer `yaml:"containers"`
		Volumes       []k8sVolume    `yaml:"volumes"`
	}
	// One shard per node: shards on one node would share its cores and skew each other's rates.
	k8sAffinity struct {
		PodAntiAffinity k8sAntiAffinity `yaml:"podAntiAffinity"`
	}
	k8sAntiAffinity struct {
		Required []k8sTerm `yaml:"requiredDuringSchedulingIgnoredDuringExecution"`
	}
	k8sTerm struct {
		LabelSelector k8sSelector `yaml:"labelSelector"`
		TopologyKey   string      `yaml:"topologyKey"`
	}
	k8sSelector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	k8sContainer struct {
		Name            string       `yaml:"name"`
		Image           string       `yaml:"image"`
		Command         []string     `yaml:"command"`
		Args            []string     `yaml:"args"`
		SecurityContext k8sSecurity  `yaml:"securityContext"`
		Resources       k8sResources `yaml:"resources"`
		VolumeMounts    []k8sMount   `yaml:"volumeMounts"`
	}
	// Privileged: the lab creates network namespaces, veths, nftables rules and qdiscs, and writes the lab
	// namespaces' sysctls.
	k8sSecurity struct {
		Privileged bool `yaml:"privileged"`
	}
	k8sResources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	}
	k8sMount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly,omitempty"`
	}
	k8sVolume struct {
		Name                  string           `yaml:"name"`
		ConfigMap             *k8sConfigMapRef `yaml:"configMap,omitempty"`
		PersistentVolumeClaim *k8sClaimRef     `yaml:"persistentVolumeClaim,omitempty"`
	}
	k8sConfigMapRef struct {
		Name string `yaml:"name"`
	}
	k8sClaimRef struct {
		ClaimName string `yaml:"claimName"`
	}
)
