package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/faultlab/faultlab/bench/peers"
	"github.com/faultlab/faultlab/capture"
	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/runner"
	"github.com/faultlab/faultlab/harness/spec"
)

type config struct {
	out                         string
	scenario, mininet, vegeta   string
	loadStart, loadInc, loadMax float64
	step, timeout               time.Duration
	pps                         []float64
	ppsDur                      time.Duration
	timeWait, rounds, topoRound int
	memory                      bool
	parts                       map[string]bool
}

var allParts = []string{"load", "capture", "analysis", "sampler", "topology", "memory"}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench-peers", flag.ContinueOnError)
	fs.StringVar(&c.out, "out", "runs/bench-peers", "directory for this run's raw outputs, profiles and table")
	fs.StringVar(&c.scenario, "scenario", "bench/peers/lab.yaml", "the lab")
	fs.StringVar(&c.mininet, "mininet", "bench/peers/mininet_star.py", "the Mininet star script")
	fs.StringVar(&c.vegeta, "vegeta", "bin/peers/vegeta", "vegeta, as bench/peers/install.sh installs it")
	fs.Float64Var(&c.loadStart, "load-start", 2000, "first rate of the load ladder, connections/s")
	fs.Float64Var(&c.loadInc, "load-inc", 2000, "step of the load ladder")
	fs.Float64Var(&c.loadMax, "load-max", 30000, "last rate of the load ladder")
	fs.DurationVar(&c.step, "step", 5*time.Second, "duration of one load step")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "every generator's per-connection timeout (whole seconds)")
	pps := fs.String("pps", "50000,100000,150000,200000,250000,300000", "the capture ladder, packets/s")
	fs.DurationVar(&c.ppsDur, "pps-duration", 2*time.Second, "duration of one capture step")
	fs.IntVar(&c.timeWait, "time-wait", 25000, "TIME_WAIT sockets for the sampler comparison")
	fs.IntVar(&c.rounds, "rounds", 15, "samples of each side in the sampler comparison")
	fs.IntVar(&c.topoRound, "topology-rounds", 5, "stars built by each side")
	only := fs.String("only", strings.Join(allParts, ","), "parts to run")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var errs []error
	for _, f := range strings.Split(*pps, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !(v > 0) {
			errs = append(errs, fmt.Errorf("-pps %q: want positive numbers", f))
		}
		c.pps = append(c.pps, v)
	}
	c.parts = map[string]bool{}
	for _, p := range strings.Split(*only, ",") {
		if !contains(allParts, p) {
			errs = append(errs, fmt.Errorf("-only %q: parts are %s", p, strings.Join(allParts, ",")))
		}
		c.parts[p] = true
	}
	if !(c.loadStart > 0) || !(c.loadInc > 0) || c.loadMax < c.loadStart {
		errs = append(errs, errors.New("-load-start, -load-inc: want > 0, -load-max >= -load-start"))
	}
	if c.step < time.Second || c.timeout < time.Second || c.timeout%time.Second != 0 {
		errs = append(errs, errors.New("-step: want >= 1s; -timeout: whole seconds (httperf and vegeta's unit)"))
	}
	if c.timeWait < 1 || c.timeWait > 60000 || c.rounds < 1 || c.topoRound < 1 {
		errs = append(errs, errors.New("-time-wait in 1..60000, -rounds and -topology-rounds >= 1"))
	}
	return c, errors.Join(errs...)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// preflight finds every program the parts need before any work.
func preflight(c config) error {
	var errs []error
	need := map[string][]string{"load": {c.vegeta, "httperf"}, "capture": {"tcpdump"}, "analysis": {"tshark"},
		"sampler": {"ss"}, "topology": {"/usr/bin/python3", "mn"}, "memory": {"bin/faultlab"}}
	for part, progs := range need {
		if !c.parts[part] {
			continue
		}
		for _, p := range progs {
			if _, err := exec.LookPath(p); err != nil {
				errs = append(errs, fmt.Errorf("%s needs %s (make bench-peers installs it: bench/peers/install.sh): %w",
					part, p, err))
			}
		}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		errs = append(errs, err)
	}
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("needs root (network namespaces)"))
	}
	return errors.Join(errs...)
}

// machineState is the date, kernel, CPUs, load average and commit, printed with the table.
func machineState() string {
	uname, _ := exec.Command("uname", "-r").Output()
	commit, _ := exec.Command("git", "describe", "--always", "--dirty").Output()
	return fmt.Sprintf("%s UTC, Linux %s, %d CPUs, load average %s, commit %s",
		time.Now().UTC().Format("2006-01-02 15:04"), strings.TrimSpace(string(uname)), runtime.NumCPU(),
		loadAverage(), strings.TrimSpace(string(commit)))
}

// loadAverage is /proc/loadavg's 1, 5 and 15 minute figures.
func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// report collects the table's rows and the profiles of the rows below 1.0.
type report struct {
	rows     []peers.Ratio
	profiles []string // "row: path\n<pprof -top>"
	raw      map[string]any
	dir      string
}

func (r *report) log(format string, a ...any) { fmt.Fprintf(os.Stderr, format, a...) }

// add appends a row; when it is below 1.0 and prof is set, prof writes a CPU profile of the lab's side,
// which is summarised with pprof -top.
func (r *report) add(ctx context.Context, row peers.Ratio, prof func(path string) error) {
	if row.Below1() && prof != nil {
		path := filepath.Join(r.dir, fmt.Sprintf("profile-%d.pprof", len(r.rows)+1))
		if err := prof(path); err != nil {
			row.Note += "; profile failed: " + err.Error()
		} else {
			row.Note += "; profile " + filepath.Base(path)
			r.profiles = append(r.profiles, fmt.Sprintf("%s: %s\n%s", row.What, path, pprofTop(ctx, path)))
		}
	}
	r.rows = append(r.rows, row)
}

func run(ctx context.Context, c config) error {
	if err := preflight(c); err != nil {
		return err
	}
	abs, err := filepath.Abs(c.vegeta)
	if err != nil {
		return err
	}
	c.vegeta = abs
	dir := filepath.Join(c.out, time.Now().UTC().Format("20060102T150405Z"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	rep := &report{dir: dir, raw: map[string]any{}}
	before := machineState()
	rep.log("bench-peers: %s; outputs in %s\n", before, dir)
	t0 := time.Now()
	partsErr := runParts(ctx, c, rep)
	var tb strings.Builder
	fmt.Fprintf(&tb, "bench-peers, one run (%s): started %s; ended with load average %s\n\n",
		time.Since(t0).Round(time.Second), before, loadAverage())
	if partsErr != nil {
		fmt.Fprintf(&tb, "INCOMPLETE: %v\n\n", partsErr)
	}
	if err := peers.WriteTable(&tb, rep.rows); err != nil {
		return err
	}
	for _, p := range rep.profiles {
		tb.WriteString("\nProfile of a ratio below 1.0, " + p)
	}
	fmt.Print(tb.String())
	rawJSON, _ := json.MarshalIndent(rep.raw, "", "  ")
	return errors.Join(partsErr, os.WriteFile(filepath.Join(dir, "table.md"), []byte(tb.String()), 0o644),
		os.WriteFile(filepath.Join(dir, "raw.json"), rawJSON, 0o644))
}

// runParts brings the lab up for the parts that use it, runs them, tears it down, then runs the rest.
func runParts(ctx context.Context, c config, rep *report) (err error) {
	var pcap string
	if c.parts["load"] || c.parts["capture"] || c.parts["sampler"] || c.parts["topology"] || c.parts["analysis"] {
		s, err := spec.Load(c.scenario)
		if err != nil {
			return err
		}
		r, err := runner.New(s, runner.Options{OutDir: filepath.Join(rep.dir, "lab")})
		if err != nil {
			return err
		}
		lab, err := r.Up(ctx, r.Cells()[0])
		if err != nil {
			return fmt.Errorf("lab up: %w", err)
		}
		defer func() { err = errors.Join(err, lab.Env.Close()) }()
		if pcap, err = labParts(ctx, c, rep, lab); err != nil {
			return err
		}
		if err := lab.Env.Close(); err != nil {
			return err
		}
	}
	if c.parts["analysis"] {
		if err := analysisPart(ctx, c, rep, pcap); err != nil {
			return err
		}
	}
	if c.parts["memory"] {
		return memoryPart(ctx, rep)
	}
	return nil
}

// labParts runs the parts that need the running lab; it returns the pcap the analysis part reads.
func labParts(ctx context.Context, c config, rep *report, lab *runner.Lab) (string, error) {
	client := lab.Env.Host("client").(harness.NetnsHost)
	ns := filepath.Base(client.NetnsPath())
	lb := lab.Services["lb"]
	if c.parts["load"] {
		if err := loadPart(ctx, c, rep, ns, lb); err != nil {
			return "", err
		}
	}
	var pcap string
	if c.parts["analysis"] {
		var err error
		if pcap, err = recordPcap(ctx, c, rep, client, ns, lb); err != nil {
			return "", err
		}
	}
	if c.parts["sampler"] {
		// the backend: its port range (28,232 by default) holds 25,000, and nothing of the load closes first there
		backend := lab.Env.Host("backend").(harness.NetnsHost)
		if err := samplerPart(ctx, c, rep, backend, filepath.Base(backend.NetnsPath())); err != nil {
			return "", err
		}
	}
	if c.parts["capture"] {
		backend := lab.Env.Host("backend").(harness.NetnsHost)
		if err := capturePart(ctx, c, rep, client, ns, backend); err != nil {
			return "", err
		}
	}
	if c.parts["topology"] {
		if err := topologyPart(ctx, c, rep, ns); err != nil {
			return "", err
		}
	}
	return pcap, nil
}

// recordPcap captures the client's eth0 while the lab's generator runs 3,000 connections/s for 4 s through
// the proxy: the file both analysers read.
func recordPcap(ctx context.Context, c config, rep *report, client harness.NetnsHost, ns string,
	lb netip.AddrPort) (string, error) {
	path := filepath.Join(rep.dir, "analysis.pcap")
	cp, err := capture.NewCapture(client, capture.LinkCapture{Iface: "eth0", Snaplen: 128}, path)
	if err != nil {
		return "", err
	}
	if err := cp.Start(ctx); err != nil {
		return "", err
	}
	lb2 := &loadBench{ns: ns, target: lb, step: 4 * time.Second, timeout: c.timeout}
	_, lerr := runIn(ctx, ns, lb2.generators()[0].argv(3000, "")...)
	waitQuiet(func() int64 { return int64(cp.Stats().Written) }, 200*time.Millisecond, 5*time.Second)
	return path, errors.Join(lerr, cp.Stop())
}
