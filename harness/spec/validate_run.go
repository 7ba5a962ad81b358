package spec

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Rules for the run: workload, reload storm, matrix, long mode, reference, expectations, analyses and the
// record budget. What depends on the kinds of services and workloads is Check's (check.go).

func (v *validator) workload(w *Workload, hosts []string, services map[string]*Service) {
	empty := w.Kind == "" && w.From == "" && w.Target == "" && w.Rate == 0 && w.Duration == 0 && w.Timeout == 0 &&
		w.Warmup == 0 && w.Persistent == 0 && len(w.Options) == 0
	if !v.set("workload", !empty) {
		v.add("workload", "missing; describe the load (kind, from, target, rate, duration)")
		return
	}
	v.hostRef("workload.from", w.From, hosts)
	v.serviceRef("workload.target", w.Target, services)
	v.rate("workload.rate", w.Rate)
	if !v.set("workload.duration", w.Duration != 0) {
		v.add("workload.duration", "missing; e.g. 20s")
	} else if w.Duration <= 0 {
		v.add("workload.duration", "%s must be > 0", w.Duration)
	}
	if !v.set("workload.timeout", w.Timeout != 0) {
		w.Timeout = defaultTimeout
	} else if w.Timeout <= 0 {
		v.add("workload.timeout", "%s must be > 0", w.Timeout)
	}
	if w.Warmup < 0 {
		v.add("workload.warmup", "%s must be >= 0", w.Warmup)
	}
	v.persistent("workload.persistent", w.Persistent)
	if _, ok := w.Options[""]; ok {
		v.add("workload.options", "empty option name")
	}
}

// maxPersistent bounds the connections a persistent workload keeps open.
const maxPersistent = 10000

func (v *validator) persistent(path string, n int) {
	if n < 0 || n > maxPersistent {
		v.add(path, "%d out of range 0..%d", n, maxPersistent)
	}
}

func (v *validator) reload(r *Reload, services map[string]*Service) {
	if r == nil {
		return
	}
	v.serviceRef("reload.service", r.Service, services)
	if !v.set("reload.interval", r.Interval != 0) {
		v.add("reload.interval", "missing; e.g. 250ms")
	} else if r.Interval <= 0 {
		v.add("reload.interval", "%s must be > 0", r.Interval)
	}
	if r.Jitter < 0 || r.Interval > 0 && r.Jitter >= r.Interval {
		v.add("reload.jitter", "%s must be >= 0 and < interval (%s)", r.Jitter, r.Interval)
	}
	v.window("reload.syn_drop", &r.SynDrop)
	v.window("reload.syn_hold", &r.SynHold)
}

// matrix checks the rows and returns the cell names expectations may refer to.
func (v *validator) matrix(s *Scenario, hosts []string, services map[string]*Service) []string {
	if len(s.Matrix) == 0 {
		return []string{"default"}
	}
	var names []string
	for i := range s.Matrix {
		row, p := &s.Matrix[i], fmt.Sprintf("matrix[%d]", i)
		switch j := slices.Index(names, row.Name); {
		case row.Name == "":
			v.add(p+".name", "missing; want a name matching %s", pattern(cellName))
		case !cellName.MatchString(row.Name):
			v.add(p+".name", "%q must match %s", row.Name, pattern(cellName))
		case j >= 0:
			v.add(p+".name", "duplicate cell %q (also matrix[%d])", row.Name, j)
		}
		names = append(names, row.Name)
		v.row(p, row, s.Reload != nil, hosts, services)
		v.replace(p, row, s, hosts, services)
	}
	return names
}

// row checks a matrix row's structure; Check checks its strategy, mitigations and option keys.
func (v *validator) row(p string, row *CellSpec, storm bool, hosts []string, services map[string]*Service) {
	if row.Reload != "" && row.Reload != "none" && !storm {
		v.add(p+".reload", "sets a reload strategy, but the scenario has no reload section")
	}
	for j, m := range row.Mitigations {
		mp := fmt.Sprintf("%s.mitigations[%d]", p, j)
		switch {
		case m == "":
			v.add(mp, "empty mitigation name")
		case slices.Index(row.Mitigations, m) < j:
			v.add(mp, "duplicate mitigation %q", m)
		case !storm || row.Reload == "none":
			v.add(mp, "%s mitigates reloads, but this cell has no reload storm", m)
		}
	}
	for _, h := range sortedKeys(row.Sysctls) {
		if hp := p + ".sysctls[" + h + "]"; !slices.Contains(hosts, h) {
			v.add(hp, "no host %q (hosts: %s)", h, listed(hosts))
		} else {
			v.sysctls(hp, row.Sysctls[h])
		}
	}
	for _, name := range sortedKeys(row.Services) {
		sp := p + ".services[" + name + "]"
		if _, ok := services[name]; !ok {
			v.add(sp, "no service %q (services: %s)", name, listed(sortedKeys(services)))
		} else if _, ok := row.Services[name][""]; ok {
			v.add(sp, "empty option name")
		}
	}
	if v.set(p+".rate", row.Rate != 0) {
		v.rate(p+".rate", row.Rate)
	}
	v.persistent(p+".persistent", row.Persistent)
	if _, ok := row.WorkloadOptions[""]; ok {
		v.add(p+".workload_options", "empty option name")
	}
}

func (v *validator) long(l *Long, hosts []string) {
	if l == nil {
		return
	}
	if v.set("long.duration", l.Duration != 0) && l.Duration <= 0 {
		v.add("long.duration", "%s must be > 0", l.Duration)
	}
	if v.set("long.rate", l.Rate != 0) {
		v.rate("long.rate", l.Rate)
	}
	if v.set("long.repetitions", l.Repetitions != 0) && (l.Repetitions < 1 || l.Repetitions > maxRepetitions) {
		v.add("long.repetitions", "%d out of range 1..%d", l.Repetitions, maxRepetitions)
	}
	if v.set("long.rounds", l.Rounds != 0) {
		v.rounds("long.rounds", l.Rounds, l.Repetitions, l.Duration)
	}
	for _, h := range sortedKeys(l.Sysctls) {
		hp := "long.sysctls[" + h + "]"
		if !slices.Contains(hosts, h) {
			v.add(hp, "no host %q (hosts: %s)", h, listed(hosts))
		} else {
			v.sysctls(hp, l.Sysctls[h])
		}
	}
}

func (v *validator) expect(exps []Expectation, cells []string) {
	for i := range exps {
		e, p := &exps[i], fmt.Sprintf("expect[%d]", i)
		v.cellRef(p+".cell", e.Cell, cells)
		var got []string
		for _, c := range []struct {
			name string
			set  bool
		}{
			{"failures", e.Failures != ""},
			{"resets", e.Resets != ""},
			{"better_than", e.BetterThan != ""},
			{"fewer_resets_than", e.FewerResetsThan != ""},
			{"connect_p99_at_least", e.ConnectP99AtLeast != 0},
		} {
			if v.set(p+"."+c.name, c.set) {
				got = append(got, c.name)
			}
		}
		if len(got) != 1 {
			v.add(p, "want exactly one claim of %s; got %s", claims, orNone(got))
		}
		if v.set(p+".failures", e.Failures != "") && e.Failures != "some" && e.Failures != "none" {
			v.add(p+".failures", "%q is not one of some, none", e.Failures)
		}
		if v.set(p+".resets", e.Resets != "") && e.Resets != "some" && e.Resets != "none" {
			v.add(p+".resets", "%q is not one of some, none", e.Resets)
		}
		v.otherCell(p+".better_than", e.BetterThan, e.Cell, cells)
		v.otherCell(p+".fewer_resets_than", e.FewerResetsThan, e.Cell, cells)
		if v.set(p+".connect_p99_at_least", e.ConnectP99AtLeast != 0) && e.ConnectP99AtLeast <= 0 {
			v.add(p+".connect_p99_at_least", "%s must be > 0", e.ConnectP99AtLeast)
		}
		if !v.set(p+".alpha", e.Alpha != 0) {
			e.Alpha = defaultAlpha
		} else if e.Alpha <= 0 || e.Alpha > 0.5 {
			v.add(p+".alpha", "%g out of range: want > 0 and <= 0.5", e.Alpha)
		}
	}
}

func (v *validator) cellRef(path, name string, cells []string) {
	if name == "" {
		v.add(path, "missing; want one of the cells (%s)", listed(cells))
	} else if !slices.Contains(cells, name) {
		v.add(path, "no cell %q (cells: %s)", name, listed(cells))
	}
}

func (v *validator) otherCell(path, name, self string, cells []string) {
	if name == "" {
		return
	}
	if name == self {
		v.add(path, "a cell cannot be compared with itself")
		return
	}
	v.cellRef(path, name, cells)
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

// reference checks the cell the others are compared with.
func (v *validator) reference(name string, cells []string) {
	if v.set("reference", name != "") {
		v.cellRef("reference", name, cells)
	}
}

// analyses checks the analysis names' form; Check checks that the lab knows them.
func (v *validator) analyses(names []string) {
	for i, a := range names {
		p := fmt.Sprintf("analyses[%d]", i)
		switch j := slices.Index(names, a); {
		case strings.TrimSpace(a) == "":
			v.add(p, "empty analysis name")
		case j < i:
			v.add(p, "duplicate analysis %q (also analyses[%d])", a, j)
		}
	}
}

// budget bounds the attempts a run records, in quick and in long mode.
func (v *validator) budget(s *Scenario) {
	w := s.Workload
	quick := attempts(s, w.Rate, w.Duration, s.Repetitions)
	if quick > maxRecords {
		v.add("workload", "the run would record %s attempts (rate x duration x cells x repetitions), more than "+
			"the record budget of %s per run (~%d bytes each on disk, %s); lower one of them",
			count(quick), count(maxRecords), recordBytes, size(quick*recordBytes))
	}
	l := s.Long
	if l == nil {
		return
	}
	rate, dur, reps := w.Rate, w.Duration, s.Repetitions
	if l.Rate > 0 {
		rate = l.Rate
	}
	if l.Duration > 0 {
		dur = l.Duration
	}
	if l.Repetitions > 0 {
		reps = l.Repetitions
	}
	if long := attempts(s, rate, dur, reps); long > maxRecords {
		v.add("long", "a long run would record %s attempts (rate x duration x cells x repetitions), more "+
			"than the record budget of %s per run (~%d bytes each on disk, %s); lower one of them",
			count(long), count(maxRecords), recordBytes, size(long*recordBytes))
	}
}

// attempts is the number of attempts a run records: every cell at its rate (a row's own, else rate) for
// dur, reps times.
func attempts(s *Scenario, rate float64, dur time.Duration, reps int) float64 {
	if dur <= 0 || reps <= 0 {
		return 0
	}
	if len(s.Matrix) == 0 {
		return max(rate, 0) * dur.Seconds() * float64(reps)
	}
	var n float64
	for _, row := range s.Matrix {
		r := rate
		if row.Rate > 0 {
			r = row.Rate
		}
		n += max(r, 0) * dur.Seconds() * float64(reps)
	}
	return n
}

// count writes a large count without an exponent.
func count(n float64) string { return fmt.Sprintf("%.0f", n) }

// size writes a byte count in GB or MB.
func size(b float64) string {
	if b >= 1e9 {
		return fmt.Sprintf("%.1f GB", b/1e9)
	}
	return fmt.Sprintf("%.0f MB", b/1e6)
}

// runEnd says when the workload ends, counted from the cell's start, where the impairment schedule's
// clock starts (before the warmup).
type runEnd struct {
	warmup      time.Duration
	quick, long time.Duration // durations; zero when not valid or (long) not set
}

func runEnds(s *Scenario) runEnd {
	w := s.Workload
	if w.Warmup < 0 {
		return runEnd{}
	}
	e := runEnd{warmup: w.Warmup, quick: max(w.Duration, 0)}
	if s.Long != nil {
		e.long = max(s.Long.Duration, 0)
	}
	return e
}

// after returns what a step at at comes too late for ("" when it is in time): the quick run's workload,
// and then the long one's.
func (e runEnd) after(at time.Duration) string {
	for _, c := range []struct {
		dur        time.Duration
		mode, name string
	}{{e.quick, "", "workload.duration"}, {e.long, " in long mode", "long.duration"}} {
		if c.dur <= 0 || at-e.warmup < c.dur { // at >= 0 and warmup >= 0: no overflow
			continue
		}
		if e.warmup > 0 {
			return fmt.Sprintf("%s is not before the workload's end%s (warmup %s + %s %s): the step would "+
				"never apply", at, c.mode, e.warmup, c.name, c.dur)
		}
		return fmt.Sprintf("%s is not before the workload's end%s (%s %s): the step would never apply",
			at, c.mode, c.name, c.dur)
	}
	return ""
}
