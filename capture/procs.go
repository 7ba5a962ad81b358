package capture

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/faultlab/faultlab/results"
)

// PIDAge is one process, how long it has been running and its resident memory.
type PIDAge struct {
	PID int           `json:"pid"`
	Age time.Duration `json:"age_ns"`
	// RSS is the resident set in bytes (/proc/PID/statm), 0 when it could not be read.
	RSS int64 `json:"rss_bytes,omitempty"`
}

// ProcSample is one line of a procs-<service>.jsonl series: results.ProcSample (T, Procs alive, OldestAge)
// plus the service, the wall clock and every live process's age, oldest first.
type ProcSample struct {
	results.ProcSample
	Service string    `json:"service"`
	Time    time.Time `json:"time"`
	PIDs    []PIDAge  `json:"pids"`
}

// ProcProbe samples the ages of a service's processes into a JSON-lines file.
type ProcProbe struct {
	cfg  ProcSampler
	pids func() []int
	path string
	s    *series
}

var _ Probe = (*ProcProbe)(nil)

// NewProcProbe prepares a process sampler; pids returns the service's current PIDs (those the lab started
// and supervises: processes are never looked up by name).
func NewProcProbe(cfg ProcSampler, pids func() []int, path string) *ProcProbe {
	if cfg.Interval == 0 {
		cfg.Interval = defaultInterval
	}
	return &ProcProbe{cfg: cfg, pids: pids, path: path}
}

// Path is the series file's path.
func (p *ProcProbe) Path() string { return p.path }

// Start takes a first sample and keeps sampling every interval.
func (p *ProcProbe) Start(ctx context.Context) error {
	if err := p.cfg.validate(); err != nil {
		return fmt.Errorf("process sampler: %w", err)
	}
	origin := p.cfg.Origin
	if origin.IsZero() {
		origin = time.Now()
	}
	var err error
	p.s, err = startSeries(ctx, p.path, p.cfg.Interval, func() (any, error) {
		s, err := SampleProcs(p.cfg.Service, p.pids(), origin)
		return s, err
	})
	if err != nil {
		return fmt.Errorf("process sampler %s: %w", p.cfg.Service, err)
	}
	return nil
}

// Stop ends sampling and closes the file (idempotent).
func (p *ProcProbe) Stop() error {
	if p.s == nil {
		return nil
	}
	if err := p.s.stop(); err != nil {
		return fmt.Errorf("process sampler %s: %w", p.cfg.Service, err)
	}
	return nil
}

// SampleProcs returns the ages of the live processes among pids; those that have exited are left out.
func SampleProcs(service string, pids []int, origin time.Time) (ProcSample, error) {
	now := time.Now()
	out := ProcSample{Service: service, Time: now, PIDs: []PIDAge{}}
	out.T = int64(now.Sub(origin))
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return out, fmt.Errorf("read boot clock: %w", err)
	}
	uptime := time.Duration(ts.Nano())
	for _, pid := range pids {
		start, err := procStart(pid)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			// gone: /proc/PID is missing, or the process was reaped between the open and the read
			continue
		}
		if err != nil {
			return out, err
		}
		out.PIDs = append(out.PIDs, PIDAge{PID: pid, Age: max(uptime-start, 0), RSS: procRSS(pid)})
	}
	slices.SortFunc(out.PIDs, func(a, b PIDAge) int { return cmp.Compare(b.Age, a.Age) })
	out.Procs = len(out.PIDs)
	if len(out.PIDs) > 0 {
		out.OldestAge = out.PIDs[0].Age
	}
	return out, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every Linux architecture Go supports.
const clockTicks = 100

// procStart returns when pid started, as time since boot (field 22 of /proc/PID/stat).
func procStart(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat: no command", pid)
	}
	f := bytes.Fields(b[i+1:])
	const startField = 22 - 3 // fields after "pid (comm)" start at field 3
	if len(f) <= startField {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ticks, err := strconv.ParseUint(string(f[startField]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat starttime: %w", pid, err)
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// procRSS is pid's resident set in bytes (field 2 of /proc/PID/statm, in pages); 0 when unreadable (the
// process has just exited).
func procRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}
