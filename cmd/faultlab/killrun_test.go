package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/results"
)

// labRun is one `faultlab run` of the kill scenario, watched through its run directory.
type labRun struct {
	cmd     *exec.Cmd
	out     string // --out: the run directory is out/kill/<time>-<id>
	log     string // stdout and stderr
	cells   []string
	started time.Time
	done    chan struct{}
	err     error
	dir     string
	times   []cellTimes
}

func (k *killer) start() *labRun {
	t := k.t
	out := t.TempDir()
	r := &labRun{out: out, log: filepath.Join(out, "faultlab.log"), cells: k.cells, done: make(chan struct{}),
		times: make([]cellTimes, len(k.cells))}
	logf, err := os.Create(r.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	r.cmd = exec.Command(k.bin, "run", "-q", "--backend", k.backend, "--out", out, killScenario)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	r.started = time.Now()
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	return r
}

func (r *labRun) elapsed() time.Duration { return time.Since(r.started) }

func (r *labRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *labRun) wait() error { <-r.done; return r.err }

func (r *labRun) took() time.Duration { return r.times[len(r.times)-1].done }

func (r *labRun) output() string { b, _ := os.ReadFile(r.log); return string(b) }

// runDir is the run directory, once it exists.
func (r *labRun) runDir() string {
	if r.dir == "" {
		if m, _ := filepath.Glob(filepath.Join(r.out, "kill", "*-*")); len(m) == 1 {
			r.dir = m[0]
		}
	}
	return r.dir
}

// prefix is the run's name prefix, fl-<id> (the run directory ends in -<id>).
func (r *labRun) prefix() string {
	d := r.runDir()
	if d == "" {
		return ""
	}
	return harness.PrefixBase + d[strings.LastIndexByte(d, '-')+1:]
}

// observe notes when each cell's directory, records.jsonl and cell.json first appear.
func (r *labRun) observe() {
	dir := r.runDir()
	if dir == "" {
		return
	}
	now := r.elapsed()
	for i, name := range r.cells {
		c := &r.times[i]
		cd := results.CellDir(dir, name, 0)
		for _, f := range []struct {
			at   *time.Duration
			path string
		}{{&c.dir, cd}, {&c.recs, filepath.Join(cd, "records.jsonl")}, {&c.done, filepath.Join(cd, results.CellFile)}} {
			if *f.at == 0 && exists(f.path) {
				*f.at = now
			}
		}
	}
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }
