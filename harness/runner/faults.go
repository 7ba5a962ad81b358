package runner

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/faults"
	"github.com/faultlab/faultlab/harness/services"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/results"
)

// mitigations are the matrix rows' mitigations, by name: the one table where they are chosen. Most act
// around each reload of the storm (faults.Around); a nil entry is applied elsewhere (tcp_migrate_req is a
// sysctl on the reloaded proxy's host, which spec.Expand sets).
var mitigations = map[string]func(c *cellRun, sv spec.Service) (faults.Around, func() error, error){
	"syn-drop":        synDrop,
	"syn-hold":        synHold,
	"tcp_migrate_req": nil,
}

// startFaults starts the cell's reload storm, with the mitigations that act around each reload, from the
// epoch on. stop ends it and returns how many reloads it made. Every reload streams to reloads.jsonl.
func (c *cellRun) startFaults(ctx context.Context) (stop func() (int, error), err error) {
	rl := c.cell.Scenario.Reload
	if rl == nil {
		return func() (int, error) { return 0, nil }, nil
	}
	target, ok := c.svcs[rl.Service].(services.Reloadable)
	if !ok {
		return nil, fmt.Errorf("service %s cannot be reloaded", rl.Service)
	}
	relw, err := results.CreateRecordWriter(filepath.Join(c.dir, "reloads.jsonl"))
	if err != nil {
		return nil, err
	}
	storm := &faults.ReloadStorm{Target: target, Strategy: strategyOf(&c.cell.Scenario), Interval: rl.Interval,
		Jitter: rl.Jitter, Seed: c.cell.Seed, Epoch: c.epoch}
	storm.Sink = func(ev results.ReloadEvent) {
		ev.Cell, ev.Rep = c.cell.Name, c.cell.Rep
		_ = relw.Write(&ev)
	}
	around, closeAround, err := c.around(rl)
	if err != nil {
		relw.Close()
		return nil, err
	}
	storm.Around = around
	c.mu.Lock()
	c.storm = storm
	c.mu.Unlock()
	stormCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var runErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := waitUntil(stormCtx, c.epoch); err != nil {
			return
		}
		if err := storm.Run(stormCtx); err != nil && !errors.Is(err, context.Canceled) {
			runErr = err
		}
	}()
	return func() (int, error) {
		cancel()
		wg.Wait()
		return storm.Reloads(), errors.Join(runErr, relw.Close(), closeAround())
	}, nil
}

// reloadCount is how many reloads the running cell's storm made so far (for progress).
func (c *cellRun) reloadCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.storm == nil {
		return 0
	}
	return c.storm.Reloads()
}

// around builds the cell's mitigations that act around each reload (several chain in matrix order).
func (c *cellRun) around(rl *spec.Reload) (faults.Around, func() error, error) {
	var sv spec.Service
	for _, s := range c.cell.Scenario.Services {
		if s.Name == rl.Service {
			sv = s
		}
	}
	var chain aroundChain
	var closers []func() error
	closeAll := func() error {
		var errs []error
		for _, f := range closers {
			errs = append(errs, f())
		}
		return errors.Join(errs...)
	}
	for _, m := range c.cell.Mitigations {
		build, ok := mitigations[m]
		if !ok {
			return nil, nil, errors.Join(fmt.Errorf("mitigation %q has no driver", m), closeAll())
		}
		if build == nil {
			continue
		}
		a, closeA, err := build(c, sv)
		if err != nil {
			return nil, nil, errors.Join(fmt.Errorf("mitigation %s: %w", m, err), closeAll())
		}
		chain, closers = append(chain, a), append(closers, closeA)
	}
	if len(chain) == 0 {
		return nil, closeAll, nil
	}
	return chain, closeAll, nil
}

// aroundChain runs several Arounds: Before in order, After in reverse.
type aroundChain []faults.Around

func (ch aroundChain) Before(ctx context.Context) error {
	for _, a := range ch {
		if err := a.Before(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (ch aroundChain) After(ctx context.Context) error {
	var errs []error
	for i := len(ch) - 1; i >= 0; i-- {
		errs = append(errs, ch[i].After(ctx))
	}
	return errors.Join(errs...)
}

// synDrop drops SYNs to the reloaded proxy's frontend port around each reload.
func synDrop(c *cellRun, sv spec.Service) (faults.Around, func() error, error) {
	rl := c.cell.Scenario.Reload
	h := c.env.Host(sv.Host).(harness.NetnsHost)
	sd, err := faults.NewSynDrop(h, harness.PrefixBase+c.r.ID, sv.Port, rl.SynDrop.Before, rl.SynDrop.After)
	if err != nil {
		return nil, nil, fmt.Errorf("on %s: %w", sv.Host, err)
	}
	c.env.Cleanup.Add("syn-drop table", sd.Close)
	return sd, func() error {
		if n, err := sd.Drops(); err == nil {
			c.note("syn-drop: %d SYNs dropped around reloads", n)
		}
		return nil
	}, nil
}

// synHold holds SYNs to the reloaded proxy's frontend port around each reload and lets them through once
// the old listener has closed. The engine that held them (and why not the plug qdisc) and the hold times
// go to the cell's info ("syn_hold") and notes.
func synHold(c *cellRun, sv spec.Service) (faults.Around, func() error, error) {
	rl := c.cell.Scenario.Reload
	h := c.env.Host(sv.Host).(harness.NetnsHost)
	sh, err := faults.NewSynHold(h, harness.PrefixBase+c.r.ID, sv.Port, rl.SynHold.Before, rl.SynHold.After,
		faults.HoldEngineAuto)
	if err != nil {
		return nil, nil, fmt.Errorf("on %s: %w", sv.Host, err)
	}
	c.env.Cleanup.Add("syn-hold gate", sh.Close)
	return sh, func() error {
		err := sh.Close()
		st := sh.Stats()
		c.setInfo("syn_hold", st)
		why := ""
		if st.PlugUnavailable != "" {
			why = " (plug qdisc: " + st.PlugUnavailable + ")"
		}
		c.note("syn-hold: engine %s%s; %d holds, hold p50 %s p99 %s max %s; %d undrained, %d unclosed",
			st.Engine, why, st.Holds, st.HoldP50, st.HoldP99, st.HoldMax, st.Undrained, st.Unclosed)
		if p := st.Plug; p != nil {
			c.note("syn-hold: %d SYNs held by the plug qdiscs on %s (at most %d in one hold), %d dropped over "+
				"the limit", p.Held, strings.Join(p.Links, ", "), p.HeldMax, p.Dropped)
		}
		if q := st.Queue; q != nil {
			// the program's lateness histogram spans 0-50 ms (its quantiles beyond read as the maximum): the
			// mean and the maximum are exact
			c.note("syn-hold: %d SYNs held (%d seen, %d overflow), held mean %s max %s", q.Queued, q.Seen,
				q.Overflow, q.LateMean, q.LateMax)
		}
		return err
	}, nil
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
