// Package runner is the conductor: for each cell of a scenario it builds the lab through a provider, starts
// the services, runs the faults and the workload, collects the outputs into the run directory and turns them
// into results. Only cmd/faultlab and scenarios import it.
package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/docker"
	"github.com/faultlab/faultlab/harness/netns"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/loadgen"
	"github.com/faultlab/faultlab/results"
)

// Options tune a run. The zero value runs quick mode into ./runs with the scenario's backend and seed.
type Options struct {
	Backend string // overrides the scenario's backend when set
	Long    bool   // nightly mode: the scenario's long overrides
	OutDir  string // base directory of run directories (default "runs")
	Seed    int64  // overrides the scenario's seed when non-zero
	// Progress receives a line of progress about once a second while a cell runs (nil: silent).
	Progress func(Progress)
}

// Progress is a snapshot of the running cell.
type Progress struct {
	Cell              string
	Rep               int
	Elapsed, Duration time.Duration
	Load              loadgen.StatsSnapshot
	Reloads           int
}

// Runner runs the cells of one scenario into one run directory.
type Runner struct {
	Scenario *spec.Scenario
	Opts     Options
	ID       string // short run id: names start with harness.PrefixBase+ID
	Dir      string
	Started  time.Time

	provider harness.Provider
	mu       sync.Mutex
	outputs  []*CellOutput
	live     *loadgen.Stats
	info     map[string]any
}

// New prepares a run: it picks the provider and creates the run directory with the resolved scenario.
func New(s *spec.Scenario, opts Options) (*Runner, error) {
	if opts.OutDir == "" {
		opts.OutDir = "runs"
	}
	if opts.Seed != 0 {
		s.Seed = opts.Seed
	}
	backend := s.Backend
	if opts.Backend != "" {
		backend = opts.Backend
	}
	p, err := provider(backend, s)
	if err != nil {
		return nil, err
	}
	r := &Runner{Scenario: s, Opts: opts, ID: newID(), Started: time.Now().UTC(), provider: p,
		info: map[string]any{}}
	r.Dir = filepath.Join(opts.OutDir, s.Name, r.Started.Format("20060102T150405Z")+"-"+r.ID)
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("run dir: %w", err)
	}
	if err := r.writeJSON("scenario.json", s); err != nil {
		return nil, err
	}
	if src, err := os.ReadFile(s.File); err == nil {
		_ = os.WriteFile(filepath.Join(r.Dir, filepath.Base(s.File)), src, 0o644)
	}
	return r, nil
}

func provider(name string, s *spec.Scenario) (harness.Provider, error) {
	switch name {
	case "", "netns":
		return netns.New(), nil
	case "docker":
		return docker.New(docker.Options{Images: images(s)}), nil
	}
	return nil, fmt.Errorf("backend %q: %w (backends: netns, docker)", name, harness.ErrUnsupported)
}

// images picks each host's container image: the scenario's, else the lab's image for the kind of service
// the host runs (hosts without services, such as the client, get the tools image).
func images(s *spec.Scenario) map[string]string {
	byKind := map[string]string{"haproxy": docker.HAProxyImage, "nginx": docker.NginxImage,
		"mariadb": docker.MariaDBImage}
	out := map[string]string{}
	for _, sv := range s.Services {
		if img, ok := byKind[sv.Kind]; ok {
			out[sv.Host] = img
		}
	}
	for _, h := range s.Hosts {
		if h.Image != "" {
			out[h.Name] = h.Image
		}
	}
	return out
}

func newID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Cells expands the scenario in the runner's mode.
func (r *Runner) Cells() []spec.Cell { return spec.Expand(r.Scenario, r.Opts.Long) }

// RunCell runs one repetition of one cell and keeps its output for the report.
func (r *Runner) RunCell(ctx context.Context, cell spec.Cell) (*CellOutput, error) {
	stop := r.startProgress(ctx, cell)
	out, err := r.runCell(ctx, cell)
	stop()
	if out != nil {
		r.mu.Lock()
		r.outputs = append(r.outputs, out)
		r.mu.Unlock()
	}
	return out, err
}

// Run runs every cell in order and writes the report. A failed cell is recorded and the run goes on; ctx
// cancellation stops it, and the report of what ran is still written.
func (r *Runner) Run(ctx context.Context) (*results.Report, error) {
	var errs []error
	for _, cell := range r.Cells() {
		if ctx.Err() != nil {
			break
		}
		if _, err := r.RunCell(ctx, cell); err != nil {
			errs = append(errs, err)
		}
	}
	rep, err := r.Finish()
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return rep, errors.Join(errs...)
	}
	return rep, ctx.Err()
}

func (r *Runner) writeJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(r.Dir, name), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// stats returns the live counters the progress reporter reads for the running cell.
func (r *Runner) stats(spec.Cell) *loadgen.Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.live = &loadgen.Stats{}
	return r.live
}

// startProgress reports the running cell about once a second until the returned stop is called.
func (r *Runner) startProgress(ctx context.Context, cell spec.Cell) (stop func()) {
	if r.Opts.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	t0 := time.Now()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				r.mu.Lock()
				live := r.live
				r.mu.Unlock()
				p := Progress{Cell: cell.Name, Rep: cell.Rep, Elapsed: time.Since(t0),
					Duration: cell.Scenario.Workload.Duration}
				if live != nil {
					p.Load = live.Snapshot()
				}
				r.Opts.Progress(p)
			}
		}
	}()
	return func() { close(done) }
}

// Table writes the Markdown table of a report.
func Table(w io.Writer, rep *results.Report) error { return results.Markdown(w, rep, "legacy") }

// Backend names the provider the runner builds labs with.
func (r *Runner) Backend() string { return r.provider.Name() }
