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
)

// cellRun is one repetition of one cell: its environment, services and outputs.
type cellRun struct {
	r    *Runner
	cell spec.Cell
	dir  string
	env  *harness.Env
	svcs map[string]services.Service
	addr map[string]netip.AddrPort // service name -> listening address

	records []results.Record
	reloads []results.ReloadEvent
	procs   []results.ProcSample
	notes   []string
	info    map[string]any // versions, sysctls as read back
	probes  map[string]any // probe analyses for results.json
	epoch   time.Time      // the cell's time zero
	// serverConns are the proxy-to-backend connections each captured host opened, for the port budget.
	serverConns map[string][]serverConn
}

// CellOutput is what one repetition of a cell produced.
type CellOutput struct {
	Cell    spec.Cell
	Dir     string
	Records []results.Record
	Reloads []results.ReloadEvent
	Procs   []results.ProcSample
	Load    loadgen.Summary
	Notes   []string
	Info    map[string]any
	Probes  map[string]any
}

// runCell builds the cell's lab, starts its services, runs the reload storm and the workload together, and
// tears everything down, also when ctx is cancelled. Records are written to the cell's directory as they come.
func (r *Runner) runCell(ctx context.Context, cell spec.Cell) (out *CellOutput, err error) {
	c, err := r.up(ctx, cell)
	if c != nil && c.env != nil {
		defer func() { err = errors.Join(err, c.env.Close()) }()
	}
	if err != nil {
		return nil, err
	}
	load, err := c.drive(ctx)
	out = &CellOutput{Cell: cell, Dir: c.dir, Records: c.records, Reloads: c.reloads, Procs: c.procs,
		Load: load, Notes: c.notes, Info: c.info, Probes: c.probes}
	return out, err
}

// up builds the cell's lab and starts its services. The caller closes c.env, also when err is not nil.
func (r *Runner) up(ctx context.Context, cell spec.Cell) (*cellRun, error) {
	c := &cellRun{r: r, cell: cell, dir: filepath.Join(r.Dir, cell.Name, fmt.Sprintf("rep%d", cell.Rep)),
		svcs: map[string]services.Service{}, addr: map[string]netip.AddrPort{}, info: map[string]any{}}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("cell %s: %w", cell.Name, err)
	}
	env, err := r.provider.Build(ctx, harness.PrefixBase+r.ID, topology(&cell.Scenario), c.dir)
	c.env = env
	if err != nil {
		return c, fmt.Errorf("cell %s: build lab: %w", cell.Name, err)
	}
	if err := c.readSysctls(); err != nil {
		return c, err
	}
	if err := c.startServices(ctx); err != nil {
		return c, fmt.Errorf("cell %s: %w", cell.Name, err)
	}
	return c, nil
}

// Lab is a built and running cell, for `faultlab up`.
type Lab struct {
	Env      *harness.Env
	Dir      string
	Services map[string]netip.AddrPort
}

// Up builds one cell's lab and starts its services without load or faults. Close the lab's Env when done.
func (r *Runner) Up(ctx context.Context, cell spec.Cell) (*Lab, error) {
	c, err := r.up(ctx, cell)
	if err != nil {
		if c != nil && c.env != nil {
			err = errors.Join(err, c.env.Close())
		}
		return nil, err
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
			return fmt.Errorf("cell %s: read back sysctls of %s: %w", c.cell.Name, h.Name, err)
		}
		got[h.Name] = vals
	}
	c.info["sysctls"] = got
	return nil
}

// drive runs the workload with the reload storm (if any) alongside, sharing one epoch, and writes the records.
func (c *cellRun) drive(ctx context.Context) (loadgen.Summary, error) {
	s := &c.cell.Scenario
	w := s.Workload
	client := c.env.Host(w.From).(harness.NetnsHost)
	sf, err := harness.NewSocketFactory(client.NetnsPath())
	if err != nil {
		return loadgen.Summary{}, err
	}
	defer sf.Close()
	recw, err := results.CreateRecordWriter(filepath.Join(c.dir, "records.jsonl"))
	if err != nil {
		return loadgen.Summary{}, err
	}
	defer recw.Close()
	epoch := time.Now().Add(w.Warmup + 50*time.Millisecond)
	c.epoch = epoch
	stopImpair, err := c.startImpair(ctx)
	if err != nil {
		return loadgen.Summary{}, err
	}
	stopProbes, err := c.startProbes(ctx, epoch)
	if err != nil {
		return loadgen.Summary{}, errors.Join(err, stopImpair())
	}
	stormCtx, stopStorm := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stormErr := c.startFaults(stormCtx, epoch, &wg)
	cfg := loadgen.Config{Cell: c.cell.Name, Rep: c.cell.Rep, Rate: w.Rate, Duration: w.Duration,
		Warmup: w.Warmup, Timeout: w.Timeout, Target: c.addr[w.Target], Seed: c.cell.Seed, Epoch: epoch,
		Stats: c.r.stats(c.cell)}
	d := &loadgen.Dialer{Socket: sf.Socket, Timeout: w.Timeout}
	if addrs := c.env.Hosts[w.From].Addrs(); len(addrs) > 1 {
		d.Sources = addrs // a client host with several addresses uses them in turn
	}
	wl, closeWorkload, err := workload(w)
	if err != nil {
		stopStorm()
		wg.Wait()
		return loadgen.Summary{}, errors.Join(err, stopProbes(), stopImpair())
	}
	var mu sync.Mutex
	sum, loadErr := loadgen.Run(ctx, cfg, wl, d, func(rec *results.Record) {
		mu.Lock()
		c.records = append(c.records, *rec)
		mu.Unlock()
		_ = recw.Write(rec)
	})
	stopStorm()
	wg.Wait()
	probeErr := stopProbes()
	impairErr := stopImpair()
	c.analyseCaptures(epoch)
	c.exhaustion(epoch)
	return sum, errors.Join(loadErr, stormErr(), probeErr, impairErr, closeWorkload())
}

// workload builds the scenario's workload; close ends a persistent workload's connections.
func workload(w spec.Workload) (wl loadgen.Workload, close func() error, err error) {
	none := func() error { return nil }
	switch {
	case w.Kind == "http":
		return loadgen.HTTP10{}, none, nil
	case w.Kind == "mysql" && w.Persistent > 0:
		p, err := loadgen.NewPersistent(loadgen.MySQL{}, w.Persistent)
		if err != nil {
			return nil, nil, err
		}
		return p, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return p.Close(ctx)
		}, nil
	case w.Kind == "mysql":
		return loadgen.MySQL{}, none, nil
	}
	return nil, nil, fmt.Errorf("workload %q passed validation but has no driver", w.Kind)
}

// startFaults starts the reload storm (with its syn-drop window when the cell asks for it) and the process
// sampler. The returned function reports their errors once wg is done.
func (c *cellRun) startFaults(ctx context.Context, epoch time.Time, wg *sync.WaitGroup) func() error {
	rl := c.cell.Scenario.Reload
	if rl == nil {
		return func() error { return nil }
	}
	target, ok := c.svcs[rl.Service].(services.Reloadable)
	if !ok {
		return func() error { return fmt.Errorf("service %s cannot be reloaded", rl.Service) }
	}
	relw, err := results.CreateRecordWriter(filepath.Join(c.dir, "reloads.jsonl"))
	if err != nil {
		return func() error { return err }
	}
	storm := &faults.ReloadStorm{Target: target, Strategy: strategyOf(&c.cell.Scenario), Interval: rl.Interval,
		Jitter: rl.Jitter, Seed: c.cell.Seed, Epoch: epoch}
	var mu sync.Mutex
	storm.Sink = func(ev results.ReloadEvent) {
		ev.Cell, ev.Rep = c.cell.Name, c.cell.Rep
		mu.Lock()
		c.reloads = append(c.reloads, ev)
		mu.Unlock()
		_ = relw.Write(ev)
	}
	around, closeAround, err := c.synDrop()
	if err != nil {
		relw.Close()
		return func() error { return err }
	}
	if around != nil {
		storm.Around = around
	}
	var runErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer relw.Close()
		defer closeAround()
		if err := waitUntil(ctx, epoch); err != nil {
			return
		}
		if err := storm.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			runErr = err
		}
	}()
	go func() {
		defer wg.Done()
		c.sampleProcs(ctx, target, epoch)
	}()
	return func() error { return runErr }
}

func waitUntil(ctx context.Context, t time.Time) error {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// sampleProcs records how many proxy processes are alive every 100 ms (old processes linger after reloads).
func (c *cellRun) sampleProcs(ctx context.Context, target services.Reloadable, epoch time.Time) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c.procs = append(c.procs, results.ProcSample{T: now.Sub(epoch).Nanoseconds(), Procs: target.Procs()})
		}
	}
}
