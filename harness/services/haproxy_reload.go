package services

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/faultlab/faultlab/harness"
)

// Reload reloads haproxy with its strategy and returns when a new process (master-worker: a new worker)
// holds the frontend's listening socket. Old processes are left to finish as the strategy says; their
// Process reaps them.
func (x *HAProxy) Reload(ctx context.Context) (ReloadResult, error) {
	x.opMu.Lock()
	defer x.opMu.Unlock()
	if x.cfg.Strategy == StrategyMasterWorker {
		return x.reloadMaster(ctx)
	}
	return x.reloadLegacy(ctx)
}

// reloadLegacy starts a new foreground process that takes over from the alive ones: -sf or -st <pids>,
// and with socket-transfer -x <admin socket> to receive their listening sockets.
func (x *HAProxy) reloadLegacy(ctx context.Context) (ReloadResult, error) {
	argv := []string{x.bin, "-f", x.cfgPath, "-p", x.pidPath}
	old := x.alive()
	if len(old) > 0 {
		if x.cfg.Strategy == StrategySocketTransfer {
			argv = append(argv, "-x", x.adminSock)
		}
		flag := "-sf"
		if x.cfg.Strategy == StrategyLegacyST {
			flag = "-st"
		}
		argv = append(argv, flag) // must come last: it takes every following argument as a PID
		for _, p := range old {
			argv = append(argv, strconv.Itoa(p.PID))
		}
	}
	off := logSize(x.logPath)
	res := ReloadResult{Start: time.Now()}
	p, err := x.start(ctx, argv)
	if err != nil {
		return res, err
	}
	err = waitReady(ctx, p, off, func(ctx context.Context) error {
		var werr error
		res.NewPIDs, werr = x.waitListener(ctx, p)
		res.End = time.Now()
		if werr != nil {
			return werr
		}
		return x.waitReloadable(ctx, p)
	})
	if err != nil {
		return res, fmt.Errorf("reload haproxy %s (%s): %w", x.cfg.Name, x.cfg.Strategy, withLog(err, x.logPath, off))
	}
	return res, nil
}

// reloadMaster sends SIGUSR2 to the master and waits for a worker that was not there before to hold the
// listener. A master that cannot load the configuration logs "Loading failure" and keeps the old workers.
func (x *HAProxy) reloadMaster(ctx context.Context) (ReloadResult, error) {
	res := ReloadResult{Start: time.Now()}
	master := x.master()
	if master == nil {
		return res, fmt.Errorf("reload haproxy %s: master not running", x.cfg.Name)
	}
	if err := x.waitReloadable(ctx, master); err != nil {
		return res, fmt.Errorf("reload haproxy %s: %w", x.cfg.Name, err)
	}
	before := aliveChildren(master.PID)
	off := logSize(x.logPath)
	res.Start = time.Now()
	if err := master.Signal(syscall.SIGUSR2); err != nil {
		return res, fmt.Errorf("reload haproxy %s: %w", x.cfg.Name, err)
	}
	err := waitReady(ctx, master, off, func(ctx context.Context) error {
		return poll(ctx, func() (bool, error) {
			fresh := slices.DeleteFunc(aliveChildren(master.PID), func(pid int) bool {
				return slices.Contains(before, pid)
			})
			if len(fresh) > 0 && res.NewPIDs == nil {
				held, err := harness.ListeningAmong(x.h, int(x.cfg.Bind.Port()), fresh)
				if err != nil {
					return false, err
				}
				if len(held) > 0 {
					res.NewPIDs, res.End = fresh, time.Now()
				}
			}
			if res.NewPIDs != nil {
				return catches(master.PID, syscall.SIGUSR2), nil
			}
			if log := logSince(x.logPath, off); strings.Contains(log, "Loading failure") {
				return false, fmt.Errorf("master kept the old workers: %s", log)
			}
			return false, nil
		})
	})
	if err != nil {
		return res, fmt.Errorf("reload haproxy %s (%s): %w", x.cfg.Name, x.cfg.Strategy, withLog(err, x.logPath, off))
	}
	return res, nil
}

// withLog adds the log written since off to a timeout, which otherwise says nothing of what haproxy did.
func withLog(err error, logPath string, off int64) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w; log: %s", err, logSince(logPath, off))
	}
	return err
}

// waitListener waits until p (legacy strategies) or one of p's workers (master-worker) holds the frontend's
// listening socket, and returns the PIDs holding it.
func (x *HAProxy) waitListener(ctx context.Context, p *harness.Process) ([]int, error) {
	port := int(x.cfg.Bind.Port())
	var held []int
	err := poll(ctx, func() (bool, error) {
		pids := []int{p.PID}
		if x.cfg.Strategy == StrategyMasterWorker {
			pids = aliveChildren(p.PID)
		}
		var err error
		held, err = harness.ListeningAmong(x.h, port, pids)
		return len(held) > 0, err
	})
	if err != nil {
		return nil, fmt.Errorf("wait for a listener on port %d: %w", port, err)
	}
	return held, nil
}

// waitReloadable waits until p can take the next reload: a process that has not yet installed its signal
// handlers ignores SIGUSR2 (a master would lose the reload) or dies of SIGUSR1/SIGTTOU (an old process
// told to soft-stop while still starting). Reload returns only then, so reloads in a storm never overlap.
func (x *HAProxy) waitReloadable(ctx context.Context, p *harness.Process) error {
	sig := syscall.SIGUSR1
	if x.cfg.Strategy == StrategyMasterWorker {
		sig = syscall.SIGUSR2
	}
	err := poll(ctx, func() (bool, error) { return catches(p.PID, sig), nil })
	if err != nil {
		return fmt.Errorf("wait for pid %d to handle %s: %w", p.PID, sig, err)
	}
	return nil
}

// catches reports whether pid has a handler installed for sig (SigCgt in /proc/<pid>/status).
func catches(pid int, sig syscall.Signal) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "SigCgt:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<(uint(sig)-1)) != 0
		}
	}
	return false
}

// master is the master process of a master-worker service (nil when not running).
func (x *HAProxy) master() *harness.Process {
	if ps := x.alive(); len(ps) > 0 {
		return ps[0]
	}
	return nil
}

// Procs is the number of haproxy processes alive: for the legacy strategies every process started and not
// yet exited; for master-worker the master's workers (old and new), not the master itself.
func (x *HAProxy) Procs() int {
	if x.cfg.Strategy == StrategyMasterWorker {
		if m := x.master(); m != nil {
			return len(aliveChildren(m.PID))
		}
		return 0
	}
	return len(x.alive())
}

// PIDs lists every haproxy process alive: the started processes and, for master-worker, the workers.
func (x *HAProxy) PIDs() []int {
	var pids []int
	for _, p := range x.alive() {
		pids = append(pids, p.PID)
		if x.cfg.Strategy == StrategyMasterWorker {
			pids = append(pids, aliveChildren(p.PID)...)
		}
	}
	return pids
}

// aliveChildren lists pid's children that have not exited (zombies excluded), from
// /proc/<pid>/task/*/children.
func aliveChildren(pid int) []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var kids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(s); err == nil && !slices.Contains(kids, c) && !zombie(c) {
				kids = append(kids, c)
			}
		}
	}
	return kids
}

// zombie reports whether pid has exited (a zombie not yet reaped, or gone).
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses and may contain spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return true
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}
