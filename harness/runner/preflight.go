package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/faultlab/faultlab/capture"
	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/docker"
	"github.com/faultlab/faultlab/harness/services"
	"github.com/faultlab/faultlab/harness/spec"
	"golang.org/x/sys/unix"
)

// recordBytes is about what one attempt takes in records.jsonl (the figure spec's record budget uses).
const recordBytes = 250

// dockerTimeout bounds the preflight's questions to the Docker engine.
const dockerTimeout = 5 * time.Second

// PreflightReport says what a preflight looked at.
type PreflightReport struct {
	Backend string
	// Cells is the number of cells the run would run (matrix rows x repetitions or rounds, as selected).
	Cells int
	// Checked lists what was checked on this machine, one phrase each (e.g. "3 sysctls on kernel 6.18").
	Checked []string
}

// Preflight checks, before the first cell and without building anything, what the scenario can get wrong
// on this machine, for every cell the run would run (opts gives the backend, long mode, the selected cells
// and the output directory, as for New):
//
//   - every sysctl a cell sets exists on this kernel and is per network namespace, and the kernel takes the
//     value: each host's sysctls are written, as the provider writes them, in a scratch network namespace
//     (anonymous and held by a file descriptor only, so nothing of it outlives the call, even a SIGKILL);
//   - capture filters compile (libpcap, as the capture will);
//   - on the netns backend the daemons' binaries exist (the drivers' lookups and messages); on the docker
//     backend a Docker engine answers and the lab images exist (with the command that builds them);
//   - the records fit in the output directory's free space (~250 bytes an attempt).
//
// s must have passed Parse and Check. The error is nil or a *spec.Error whose problems name the file, line
// and field; the report is never nil. Checking sysctls needs root (a network namespace).
func Preflight(ctx context.Context, s *spec.Scenario, opts Options) (*PreflightReport, error) {
	p := &preflight{ctx: ctx, s: s, opts: opts, backend: firstSet(opts.Backend, s.Backend, "netns"),
		rows: map[string]int{}}
	p.cells = spec.Expand(s, opts.Long)
	if opts.UntilDecided {
		if cells, _, err := sequentialCells(s, opts, p.cells); err == nil {
			p.cells = cells // every round the budget may hold (the plan is New's error)
		}
	}
	if sel, err := selectCells(p.cells, opts.Cells); err == nil {
		p.cells = sel // an unknown cell name is New's error
	}
	p.cells = kernelCells(s, p.cells, opts.Kernel)
	for i, row := range s.Matrix {
		p.rows[row.Name] = i
	}
	p.rep = &PreflightReport{Backend: p.backend, Cells: len(p.cells)}
	p.sysctls()
	p.filters()
	p.workloads()
	switch _, known := providers[p.backend]; {
	case !known:
		p.add("backend", "%q is not one of %s", p.backend, strings.Join(slices.Sorted(maps.Keys(providers)), ", "))
	case p.backend == "docker":
		p.images()
	default:
		p.binaries()
	}
	p.disk()
	if err := ctx.Err(); err != nil {
		return p.rep, fmt.Errorf("preflight: %w", err)
	}
	if len(p.problems) == 0 {
		return p.rep, nil
	}
	sort.SliceStable(p.problems, func(i, j int) bool { return p.problems[i].Line < p.problems[j].Line })
	return p.rep, &spec.Error{Problems: p.problems}
}

// firstSet returns the first non-empty string.
func firstSet(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

type preflight struct {
	ctx      context.Context
	s        *spec.Scenario
	opts     Options
	backend  string
	cells    []spec.Cell
	rows     map[string]int // matrix row index by cell name
	rep      *PreflightReport
	problems []spec.Problem
	seen     map[string]bool // field + message, so a problem shared by cells is reported once
}

func (p *preflight) add(path, format string, args ...any) {
	msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", "; ") // one problem, one line
	pr := p.s.Located(spec.Problem{File: p.s.File, Line: p.s.Line(path), Field: path, Msg: msg})
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	if p.seen[pr.Field+"\x00"+pr.Msg] {
		return
	}
	p.seen[pr.Field+"\x00"+pr.Msg] = true
	p.problems = append(p.problems, pr)
}

func (p *preflight) checked(format string, args ...any) {
	p.rep.Checked = append(p.rep.Checked, fmt.Sprintf(format, args...))
}

// row is the matrix row a cell comes from, or -1 (the scenario has no matrix).
func (p *preflight) row(c *spec.Cell) int {
	if i, ok := p.rows[c.Name]; ok && len(p.s.Matrix) > 0 {
		return i
	}
	return -1
}

// causes lists each distinct failure of a joined error.
func causes(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// sysctlUse is one sysctl as one cell sets it on one host, with the field that set it.
type sysctlUse struct{ name, value, field string }

// sysctls checks every sysctl the cells set: that it exists on this kernel and is per network namespace
// (read in a scratch namespace), then that the kernel takes each host's values as the provider writes
// them (harness.ApplySysctls, in sorted order, in a fresh scratch namespace per distinct set).
func (p *preflight) sysctls() {
	var names []string
	fields := map[string][]string{} // name -> the fields that set it, in order
	var sets [][]sysctlUse
	seen := map[string]bool{}
	for ci := range p.cells {
		c := &p.cells[ci]
		for hi, h := range c.Scenario.Hosts {
			var set []sysctlUse
			for _, name := range slices.Sorted(maps.Keys(h.Sysctls)) {
				u := sysctlUse{name, h.Sysctls[name], p.sysctlField(c, hi, name)}
				set = append(set, u)
				if _, ok := fields[name]; !ok {
					names = append(names, name)
				}
				if !slices.Contains(fields[name], u.field) {
					fields[name] = append(fields[name], u.field)
				}
			}
			if key := fmt.Sprint(set); len(set) > 0 && !seen[key] {
				seen[key] = true
				sets = append(sets, set)
			}
		}
	}
	if len(names) == 0 {
		return
	}
	ns, err := p.scratch(fields[names[0]][0])
	if err != nil {
		return
	}
	usable := p.sysctlsExist(ns, names, fields)
	for i, set := range sets {
		if i > 0 {
			ns.Close()
			if ns, err = p.scratch(set[0].field); err != nil {
				return
			}
		}
		p.sysctlValues(ns, set, usable)
	}
	ns.Close()
	p.checked("%d %s on kernel %s, per network namespace, with their values (%d %s)", len(names),
		plural(len(names), "sysctl", "sysctls"), harness.KernelRelease(), len(sets), plural(len(sets), "set", "sets"))
}

// scratch creates a scratch namespace; when it cannot, the sysctls cannot be checked: a problem at field.
func (p *preflight) scratch(field string) (*harness.ScratchNetns, error) {
	if os.Geteuid() != 0 {
		p.add(field, "cannot check the sysctls on this kernel: a scratch network namespace needs root, as the "+
			"lab does: %v", harness.ErrNotPrivileged)
		return nil, harness.ErrNotPrivileged
	}
	ns, err := harness.NewScratchNetns()
	if err != nil {
		p.add(field, "cannot check the sysctls on this kernel: %v", err)
	}
	return ns, err
}

// sysctlsExist reads each name in ns and reports, at every field that sets it, one that the kernel does not
// have or that is global to the machine; it returns the names that can be written.
func (p *preflight) sysctlsExist(ns *harness.ScratchNetns, names []string, fields map[string][]string) map[string]bool {
	usable := map[string]bool{}
	for _, name := range names {
		_, err := harness.ReadSysctls(ns, []string{name})
		var msg string
		switch {
		case err == nil:
			usable[name] = true
			continue
		case errors.Is(err, harness.ErrUnsupported):
			msg = fmt.Sprintf("%s is global to the machine, not per network namespace: the lab never changes "+
				"the machine's own settings, only its hosts' namespaces, so a scenario cannot set it", name)
		default:
			msg = unwrapped(err).Error()
		}
		for _, f := range fields[name] {
			p.add(f, "%s", msg)
		}
	}
	return usable
}

// sysctlValues writes one host's set in ns, as the provider will, and reports each value the kernel refuses
// or stores differently.
func (p *preflight) sysctlValues(ns *harness.ScratchNetns, set []sysctlUse, usable map[string]bool) {
	for _, u := range set {
		if !usable[u.name] {
			continue
		}
		if _, err := harness.ApplySysctls(ns, map[string]string{u.name: u.value}); err != nil {
			p.add(u.field, "kernel %s does not take this value: %v", harness.KernelRelease(), unwrapped(err))
		}
	}
}

// sysctlField is the field that set name on host hi in cell c: of the host's own sysctls, long mode's, the
// row's and the tcp_migrate_req mitigation, the last that sets it (Expand applies them in that order).
func (p *preflight) sysctlField(c *spec.Cell, hi int, name string) string {
	s, host := p.s, p.s.Hosts[hi].Name
	field := fmt.Sprintf("hosts[%d].sysctls[%s]", hi, name)
	if p.opts.Long && s.Long != nil {
		if _, ok := s.Long.Sysctls[host][name]; ok {
			field = fmt.Sprintf("long.sysctls[%s][%s]", host, name)
		}
	}
	r := p.row(c)
	if r < 0 {
		return field
	}
	row := s.Matrix[r]
	if _, ok := row.Sysctls[host][name]; ok {
		field = fmt.Sprintf("matrix[%d].sysctls[%s][%s]", r, host, name)
	}
	if k := slices.Index(row.Mitigations, "tcp_migrate_req"); k >= 0 && name == spec.MigrateReqSysctl &&
		c.Scenario.Reload != nil && reloadedHost(&c.Scenario) == host { // the cell's: a row may move it
		field = fmt.Sprintf("matrix[%d].mitigations[%d]", r, k)
	}
	return field
}

// reloadedHost is the host of the reload storm's service.
func reloadedHost(s *spec.Scenario) string {
	for _, sv := range s.Services {
		if sv.Name == s.Reload.Service {
			return sv.Host
		}
	}
	return ""
}

// unwrapped drops the "host NAME: " the harness puts before a sysctl error.
func unwrapped(err error) error {
	if inner := errors.Unwrap(err); inner != nil {
		return inner
	}
	return err
}

// workloads builds each cell's workload as the cell will, so that a bad option value (the kinds and keys are
// spec.Check's) is reported before the first cell, at the matrix row that set it or at workload.options.
func (p *preflight) workloads() {
	for ci := range p.cells {
		c := &p.cells[ci]
		if _, err := newWorkload(c.Scenario.Workload); err != nil {
			path := "workload.options"
			if r := p.row(c); r >= 0 && len(p.s.Matrix[r].WorkloadOptions) > 0 {
				path = fmt.Sprintf("matrix[%d].workload_options", r)
			}
			p.add(path, "%v", err)
		}
	}
}

// filters compiles the capture filters (probes are the scenario's, shared by every cell).
func (p *preflight) filters() {
	if p.s.Probes == nil {
		return
	}
	n := 0
	for i, c := range p.s.Probes.Capture {
		if c.Filter == "" {
			continue
		}
		n++
		if err := capture.CheckFilter(c.Snaplen, c.Filter); err != nil {
			p.add(fmt.Sprintf("probes.capture[%d].filter", i), "%v", err)
		}
	}
	if n > 0 {
		p.checked("%d capture %s compiled", n, plural(n, "filter", "filters"))
	}
}

// binaries finds every service's programs on this machine, as each cell would run them (a matrix row may
// point options.binary elsewhere).
func (p *preflight) binaries() {
	type key struct{ kind, bin string }
	found := map[key]bool{}
	var paths []string
	for ci := range p.cells {
		c := &p.cells[ci]
		for i, sv := range c.Scenario.Services {
			k := key{sv.Kind, sv.Options["binary"]}
			if found[k] {
				continue
			}
			found[k] = true
			bins, err := services.FindBinaries(sv.Kind, sv.Options)
			if err != nil {
				continue // an unknown kind: Check's problem
			}
			for _, b := range bins {
				if b.Err != nil {
					p.add(p.binaryField(c, i, b), "%v", b.Err)
				} else if !slices.Contains(paths, b.Path) {
					paths = append(paths, b.Path)
				}
			}
		}
	}
	if len(paths) > 0 {
		p.checked("binaries %s", strings.Join(paths, ", "))
	}
}

// binaryField is the field that chose a service's program in a cell: the row's, its replacement's or the
// service's binary option, else its kind (the program comes from PATH).
func (p *preflight) binaryField(c *spec.Cell, i int, b services.Binary) string {
	sv := c.Scenario.Services[i]
	if !b.Option || sv.Options["binary"] == "" {
		return p.kindField(c, i)
	}
	if r := p.row(c); r >= 0 {
		row := p.s.Matrix[r]
		if _, ok := row.Services[sv.Name]["binary"]; ok {
			return fmt.Sprintf("matrix[%d].services[%s][binary]", r, sv.Name)
		}
		if _, ok := row.Replace[sv.Name].Options["binary"]; ok {
			return fmt.Sprintf("matrix[%d].replace[%s].options[binary]", r, sv.Name)
		}
	}
	return fmt.Sprintf("services[%d].options[binary]", i)
}

// images asks the Docker engine for the lab images the hosts and the router run.
func (p *preflight) images() {
	ctx, cancel := context.WithTimeout(p.ctx, dockerTimeout)
	defer cancel()
	if _, err := docker.Ping(ctx); err != nil {
		if errors.Is(err, fs.ErrPermission) || strings.Contains(err.Error(), "permission denied") {
			p.add("backend", "the Docker engine refuses this user (%v): run as root, as the lab must", err)
		} else {
			p.add("backend", "no Docker engine answers (%v): start one, or use the netns backend (--backend netns)", err)
		}
		return
	}
	field := map[string]string{docker.ToolsImage: "backend"} // the router's
	list := []string{docker.ToolsImage}
	for ci := range p.cells {
		c := &p.cells[ci]
		prov := docker.New(docker.Options{Images: images(&c.Scenario)})
		for i, h := range c.Scenario.Hosts {
			img := prov.ImageOf(h.Name)
			list = append(list, img)
			if _, ok := field[img]; !ok || field[img] == "backend" {
				field[img] = p.imageField(c, i, h)
			}
		}
	}
	slices.Sort(list)
	list = slices.Compact(list)
	err := docker.CheckImages(ctx, list...)
	for _, e := range causes(err) {
		var missing *docker.MissingImageError
		switch {
		case e == nil:
		case errors.As(e, &missing):
			p.add(field[missing.Image], "%v", e)
		default:
			p.add("backend", "%v", e)
		}
	}
	if err == nil {
		p.checked("images %s", strings.Join(list, ", "))
	}
}

// imageField is the field that chose host i's image in cell c: its own image, else the kind of a service on
// it (the row's replacement's, if it replaces that service).
func (p *preflight) imageField(c *spec.Cell, i int, h spec.Host) string {
	if h.Image != "" {
		return fmt.Sprintf("hosts[%d].image", i)
	}
	for j, sv := range c.Scenario.Services {
		if e, err := services.Lookup(sv.Kind); err == nil && e.Image != "" && sv.Host == h.Name {
			return p.kindField(c, j)
		}
	}
	return fmt.Sprintf("hosts[%d]", i)
}

// kindField is the field that set service j's kind in cell c: the row's replacement, else the service's.
func (p *preflight) kindField(c *spec.Cell, j int) string {
	name := c.Scenario.Services[j].Name
	if r := p.row(c); r >= 0 {
		if _, ok := p.s.Matrix[r].Replace[name]; ok {
			return fmt.Sprintf("matrix[%d].replace[%s].kind", r, name)
		}
	}
	return fmt.Sprintf("services[%d].kind", j)
}

// disk compares what the records will take with the output directory's free space.
func (p *preflight) disk() {
	var attempts float64
	for _, c := range p.cells {
		attempts += c.Scenario.Workload.Rate * c.Scenario.Workload.Duration.Seconds()
	}
	need := attempts * recordBytes
	dir := firstSet(p.opts.OutDir, "runs")
	free, at, err := freeBytes(dir)
	if err != nil {
		p.add("", "cannot tell the free space for the run directory under %s: %v", dir, err)
		return
	}
	if need > free {
		p.add("workload", "the run would record %.0f attempts (rate x duration over %d %s), ~%s at ~%d "+
			"bytes each, but %s has %s free: free some space, write elsewhere (--out) or lower the rate, the "+
			"duration or the repetitions (rounds)", attempts, len(p.cells), plural(len(p.cells), "cell", "cells"),
			bytesText(need), recordBytes, at, bytesText(free))
		return
	}
	p.checked("records %.0f attempts, ~%s of %s free in %s", attempts, bytesText(need), bytesText(free), at)
}

// freeBytes is the space an unprivileged writer has on the filesystem that holds dir, or its nearest
// existing parent (the run directory is created later), and that directory.
func freeBytes(dir string) (float64, string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return 0, dir, err
	}
	for {
		var st unix.Statfs_t
		err := unix.Statfs(abs, &st)
		if err == nil {
			return float64(st.Bavail) * float64(st.Bsize), abs, nil
		}
		parent := filepath.Dir(abs)
		if !errors.Is(err, os.ErrNotExist) || parent == abs {
			return 0, abs, fmt.Errorf("statfs %s: %w", abs, err)
		}
		abs = parent
	}
}

func bytesText(b float64) string {
	switch {
	case b >= 1e9:
		return fmt.Sprintf("%.1f GB", b/1e9)
	case b >= 1e6:
		return fmt.Sprintf("%.1f MB", b/1e6)
	}
	return fmt.Sprintf("%.0f kB", b/1e3)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
