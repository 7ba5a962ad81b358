package runner

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/faults"
	"github.com/faultlab/faultlab/harness/services"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/loadgen"
	"github.com/faultlab/faultlab/results"
	"github.com/faultlab/faultlab/results/analyses"
)

// cellRun is one repetition of one cell while it runs: its environment, services and what it writes.
type cellRun struct {
	r     *Runner
	cell  spec.Cell
	dir   string
	env   *harness.Env
	svcs  map[string]services.Service
	addr  map[string]netip.AddrPort // service name -> listening address
	addrs map[string][]netip.Addr   // host name -> lab addresses (kept for the analyses after teardown)
	epoch time.Time                 // the cell's time zero

	mu    sync.Mutex
	meta  results.CellMeta    // becomes cell.json
	storm *faults.ReloadStorm // the running storm, for progress
}

// CellResult is what one repetition of a cell produced: its cell.json, and where its files are.
type CellResult struct {
	Cell spec.Cell
	Dir  string
	Meta results.CellMeta
	// Reloads is how many reloads the cell's storm performed (0 without one).
	Reloads int
	// Load is what the load generator measured.
	Load loadgen.Summary
}

// note adds a line to the cell's notes (safe from the fault and probe goroutines).
func (c *cellRun) note(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.meta.Notes = append(c.meta.Notes, fmt.Sprintf(format, args...))
}

// setInfo records a fact about the cell's environment (daemon versions, engines, sysctls read back).
func (c *cellRun) setInfo(key string, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.meta.Info == nil {
		c.meta.Info = map[string]any{}
	}
	c.meta.Info[key] = v
}

// addAnalysis stores a built-in result (the impairment engine's report) beside the analyses'.
func (c *cellRun) addAnalysis(a results.AnalysisResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.meta.Analyses = append(c.meta.Analyses, a)
}

// RunCell runs one repetition of one cell: it builds the lab, starts the services, runs the faults and the
// workload together, tears everything down (also when ctx is cancelled), runs the cell's analyses over what
// it wrote, and writes cell.json, also when the cell failed. Records stream to records.jsonl as they come;
// nothing per attempt is kept in memory.
func (r *Runner) RunCell(ctx context.Context, cell spec.Cell) (*CellResult, error) {
	c := &cellRun{r: r, cell: cell, dir: results.CellDir(r.Dir, cell.Name, cell.Rep),
		svcs: map[string]services.Service{}, addr: map[string]netip.AddrPort{}, addrs: map[string][]netip.Addr{}}
	c.meta = results.CellMeta{Cell: cell.Name, Rep: cell.Rep, Strategy: strategyOf(&cell.Scenario),
		Mitigations: cell.Mitigations, Storm: cell.Scenario.Reload != nil, Duration: cell.Scenario.Workload.Duration}
	res := &CellResult{Cell: cell, Dir: c.dir}
	stop := r.startProgress(ctx, cell)
	err := c.run(ctx, res)
	stop()
	if err == nil || len(c.addrs) > 0 {
		err = errors.Join(err, c.analyse())
	}
	if err != nil {
		c.meta.Error = err.Error()
		err = fmt.Errorf("cell %s: %w", cell.Name, err)
	}
	res.Meta = c.meta
	if werr := results.WriteCellMeta(c.dir, &c.meta); werr != nil {
		err = errors.Join(err, werr)
	}
	return res, err
}

// run builds, drives and tears down the cell's lab.
func (c *cellRun) run(ctx context.Context, res *CellResult) (err error) {
	if err := c.up(ctx); err != nil {
		return errors.Join(err, c.down())
	}
	defer func() { err = errors.Join(err, c.down()) }()
	res.Load, res.Reloads, err = c.drive(ctx)
	l := res.Load
	c.meta.Load = results.LoadReport{Target: l.Target, Achieved: l.Achieved, LagP50: l.LagP50, LagP99: l.LagP99,
		LagMax: l.LagMax, MaxInFlight: l.MaxInFlight}
	return err
}

func (c *cellRun) down() error {
	if c.env == nil {
		return nil
	}
	return c.env.Close()
}

// up builds the cell's lab and starts its services. The caller tears down (c.down), also on error.
func (c *cellRun) up(ctx context.Context) error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	// The cell's own provider: its hosts' images follow its services' kinds (a row may replace a service).
	prov, err := newProvider(c.r.provider.Name(), &c.cell.Scenario)
	if err != nil {
		return err
	}
	env, err := prov.Build(ctx, harness.PrefixBase+c.r.ID, topology(&c.cell.Scenario), c.dir)
	c.env = env
	if err != nil {
		return fmt.Errorf("build lab: %w", err)
	}
	for name, h := range env.Hosts {
		c.addrs[name] = h.Addrs()
	}
	if err := c.readSysctls(); err != nil {
		return err
	}
	return c.startServices(ctx)
}

// Lab is a built and running cell, for `faultlab up`.
type Lab struct {
	Env      *harness.Env
	Dir      string
	Services map[string]netip.AddrPort
}

// Up builds one cell's lab and starts its services without load or faults. Close the lab's Env when done.
func (r *Runner) Up(ctx context.Context, cell spec.Cell) (*Lab, error) {
	c := &cellRun{r: r, cell: cell, dir: results.CellDir(r.Dir, cell.Name, cell.Rep),
		svcs: map[string]services.Service{}, addr: map[string]netip.AddrPort{}, addrs: map[string][]netip.Addr{}}
	if err := c.up(ctx); err != nil {
		return nil, errors.Join(err, c.down())
	}
	return &Lab{Env: c.env, Dir: c.dir, Services: c.addr}, nil
}

// topology turns the scenario's hosts into what a provider builds.
func topology(s *spec.Scenario) harness.Topology {
	var t harness.Topology
	for _, h := range s.Hosts {
		t.Hosts = append(t.Hosts, harness.HostSpec{Name: h.Name, NumAddrs: max(h.Addrs, 1), Sysctls: h.Sysctls})
	}
	return t
}

// readSysctls records, per host, the values of the sysctls the scenario set, as the kernel reports them.
func (c *cellRun) readSysctls() error {
	got := map[string]map[string]string{}
	for _, h := range c.cell.Scenario.Hosts {
		if len(h.Sysctls) == 0 {
			continue
		}
		names := make([]string, 0, len(h.Sysctls))
		for k := range h.Sysctls {
			names = append(names, k)
		}
		vals, err := harness.ReadSysctls(c.env.Host(h.Name).(harness.NetnsHost), names)
		if err != nil {
			return fmt.Errorf("read back sysctls of %s: %w", h.Name, err)
		}
		got[h.Name] = vals
	}
	c.setInfo("sysctls", got)
	return nil
}

// drive runs the workload with the cell's faults, impairments and probes alongside, sharing one epoch.
// Records go straight to records.jsonl.
func (c *cellRun) drive(ctx context.Context) (loadgen.Summary, int, error) {
	s := &c.cell.Scenario
	w := s.Workload
	client := c.env.Host(w.From).(harness.NetnsHost)
	sf, err := harness.NewSocketFactory(client.NetnsPath())
	if err != nil {
		return loadgen.Summary{}, 0, err
	}
	defer sf.Close()
	recw, err := results.CreateRecordWriter(filepath.Join(c.dir, "records.jsonl"))
	if err != nil {
		return loadgen.Summary{}, 0, err
	}
	defer recw.Close()
	wl, err := newWorkload(w)
	if err != nil {
		return loadgen.Summary{}, 0, err
	}
	c.epoch = time.Now().Add(w.Warmup + 50*time.Millisecond)
	stopImpair, err := c.startImpair(ctx)
	if err != nil {
		return loadgen.Summary{}, 0, err
	}
	stopProbes, err := c.startProbes(ctx)
	if err != nil {
		return loadgen.Summary{}, 0, errors.Join(err, stopImpair())
	}
	stopFaults, err := c.startFaults(ctx)
	if err != nil {
		return loadgen.Summary{}, 0, errors.Join(err, stopProbes(), stopImpair())
	}
	cfg := loadgen.Config{Cell: c.cell.Name, Rep: c.cell.Rep, Rate: w.Rate, Duration: w.Duration,
		Warmup: w.Warmup, Timeout: w.Timeout, Target: c.addr[w.Target], Seed: c.cell.Seed, Epoch: c.epoch,
		Stats: c.r.liveStats(c)}
	if m, ok := c.svcs[w.Target].(services.Servers); ok && len(m.Servers()) > 1 {
		cfg.Targets = m.Servers() // a service standing for many servers: the attempts go to each in turn
	}
	d := &loadgen.Dialer{Socket: sf.Socket, Timeout: w.Timeout}
	if addrs := c.env.Hosts[w.From].Addrs(); len(addrs) > 1 {
		d.Sources = addrs // a client host with several addresses uses them in turn
	}
	stopCounters := c.startCounters()
	var werr error
	sum, loadErr := loadgen.Run(ctx, cfg, wl, d, func(rec *results.Record) {
		if err := recw.Write(rec); err != nil && werr == nil {
			werr = err
		}
	})
	reloads, faultErr := stopFaults()
	checkErr := c.reportChecks(ctx)
	err = errors.Join(loadErr, werr, checkErr, faultErr, closeWorkload(wl), stopCounters(), stopProbes(), stopImpair())
	return sum, reloads, err
}

// newWorkload builds the scenario's workload from the workload registry.
func newWorkload(w spec.Workload) (loadgen.Workload, error) {
	e, err := loadgen.LookupWorkload(w.Kind)
	if err != nil {
		return nil, err
	}
	return e.New(loadgen.WorkloadConfig{Persistent: w.Persistent, Options: w.Options})
}

// closeWorkload ends a workload's held connections (persistent workloads).
func closeWorkload(wl loadgen.Workload) error {
	cl, ok := wl.(loadgen.Closer)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cl.Close(ctx)
}

// analyse runs the cell's analyses (the scenario's, plus capture when the cell captured) over its directory.
func (c *cellRun) analyse() error {
	names := c.cell.Scenario.Analyses
	if p := c.cell.Scenario.Probes; p != nil && len(p.Capture) > 0 {
		names = append([]string{analyses.Capture.Name}, names...)
	}
	if len(names) == 0 {
		return nil
	}
	out, err := analyses.Run(names, analyses.Input{Dir: c.dir, Cell: c.cell, Epoch: c.epoch, Addrs: c.addrs})
	c.mu.Lock()
	c.meta.Analyses = append(c.meta.Analyses, out...)
	c.mu.Unlock()
	return err
}

// strategyOf is the reload strategy of the cell's storm ("none" without one).
func strategyOf(s *spec.Scenario) string {
	if s.Reload == nil {
		return "none"
	}
	for _, sv := range s.Services {
		if sv.Name == s.Reload.Service {
			return sv.Reload
		}
	}
	return ""
}
