package services

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/faultlab/faultlab/harness"
)

// Reload reloads tengine as `tengine -s reload` does, by a SIGHUP to the master, and returns when a new worker
// holds the listening socket. The old workers finish their connections and quit on their own; a
// configuration the master cannot load leaves them serving and is an error quoting error.log.
func (t *Tengine) Reload(ctx context.Context) (ReloadResult, error) {
	p := t.proc
	if p == nil || p.Exited() {
		return ReloadResult{Start: time.Now()}, fmt.Errorf("reload tengine %s: not running", t.cfg.Name)
	}
	if len(t.confs) > 0 { // reload_worker_processes: the other configuration
		t.reloads++
		if err := os.WriteFile(t.conf, t.confs[t.reloads%len(t.confs)], 0o644); err != nil {
			return ReloadResult{Start: time.Now()}, fmt.Errorf("reload tengine %s: %w", t.cfg.Name, err)
		}
	}
	res, err := reloadMaster(ctx, t.h, p, int(t.cfg.Bind.Port()), filepath.Join(t.dir, "error.log"))
	if err != nil {
		return res, fmt.Errorf("reload tengine %s: %w", t.cfg.Name, err)
	}
	return res, nil
}

// Procs is the number of tengine workers alive, old and new (the master not counted).
func (t *Tengine) Procs() int {
	if t.proc == nil || t.proc.Exited() {
		return 0
	}
	return len(aliveChildren(t.proc.PID))
}

// reloadMaster reloads an nginx-style master (nginx, tengine) by SIGHUP and waits until a worker that was not
// there before holds the listening socket on port. The master logs a configuration it cannot load as [emerg]
// in errorLog and keeps its old workers: that is an error at once, not a timeout.
func reloadMaster(ctx context.Context, h harness.NetnsHost, master *harness.Process, port int,
	errorLog string) (ReloadResult, error) {
	before := aliveChildren(master.PID)
	off, outOff := logSize(errorLog), logSize(master.LogPath)
	res := ReloadResult{Start: time.Now()}
	if err := master.Signal(syscall.SIGHUP); err != nil {
		return res, err
	}
	err := waitReady(ctx, master, outOff, func(ctx context.Context) error {
		return poll(ctx, func() (bool, error) {
			fresh := slices.DeleteFunc(aliveChildren(master.PID), func(pid int) bool {
				return slices.Contains(before, pid)
			})
			if len(fresh) > 0 {
				held, err := harness.ListeningAmong(h, port, fresh)
				if err != nil {
					return false, err
				}
				if len(held) > 0 {
					res.NewPIDs, res.End = held, time.Now()
					return true, nil
				}
			}
			if log := logSince(errorLog, off); strings.Contains(log, "[emerg]") {
				return false, fmt.Errorf("master kept the old workers: %s", log)
			}
			return false, nil
		})
	})
	if err != nil {
		return res, withLog(err, errorLog, off)
	}
	return res, nil
}
