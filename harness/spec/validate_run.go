package spec

import (
	"fmt"
	"slices"
	"strings"
)

// Rules for the run: workload, reload storm, matrix, long mode and expectations.

func (v *validator) workload(w *Workload, hosts []string, services map[string]*Service) {
	if !v.set("workload", *w != (Workload{})) {
		v.add("workload", "missing; describe the load (kind, from, target, rate, duration)")
		return
	}
	switch w.Kind {
	case "":
		v.add("workload.kind", "missing; want http or mysql")
	case "http", "mysql":
	default:
		v.add("workload.kind", "%q is not one of http, mysql", w.Kind)
	}
	v.hostRef("workload.from", w.From, hosts)
	if sv := v.serviceRef("workload.target", w.Target, services); sv != nil {
		switch {
		case w.Kind == "http" && sv.Kind == "mariadb":
			v.add("workload.target", "an http workload cannot target mariadb service %q", sv.Name)
		case w.Kind == "mysql" && (sv.Kind == "nginx" || sv.IsProxy() && sv.Mode != "tcp"):
			v.add("workload.target", "a mysql workload needs a mariadb service or a proxy in tcp mode, not %q", sv.Name)
		}
	}
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
	if w.Persistent < 0 || w.Persistent > maxPersistent {
		v.add("workload.persistent", "%d out of range 0..%d", w.Persistent, maxPersistent)
	} else if w.Persistent > 0 && w.Kind != "mysql" {
		v.add("workload.persistent", "persistent connections are implemented for the mysql workload only")
	}
}

// maxPersistent bounds the connections a persistent workload keeps open.
const maxPersistent = 10000

func (v *validator) reload(r *Reload, services map[string]*Service) {
	if r == nil {
		return
	}
	if sv := v.serviceRef("reload.service", r.Service, services); sv != nil && !sv.IsProxy() {
		v.add("reload.service", "service %q is %s, not a proxy (%s)", sv.Name, sv.Kind, strings.Join(proxyKinds, ", "))
	}
	if !v.set("reload.interval", r.Interval != 0) {
		v.add("reload.interval", "missing; e.g. 250ms")
	} else if r.Interval <= 0 {
		v.add("reload.interval", "%s must be > 0", r.Interval)
	}
	if r.Jitter < 0 || r.Interval > 0 && r.Jitter >= r.Interval {
		v.add("reload.jitter", "%s must be >= 0 and < interval (%s)", r.Jitter, r.Interval)
	}
	if !v.set("reload.syn_drop.before", r.SynDrop.Before != 0) {
		r.SynDrop.Before = defaultBefore
	} else if r.SynDrop.Before < 0 {
		v.add("reload.syn_drop.before", "%s must be >= 0", r.SynDrop.Before)
	}
	if !v.set("reload.syn_drop.after", r.SynDrop.After != 0) {
		r.SynDrop.After = defaultAfter
	} else if r.SynDrop.After < 0 {
		v.add("reload.syn_drop.after", "%s must be >= 0", r.SynDrop.After)
	}
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
	}
	return names
}

func (v *validator) row(p string, row *CellSpec, storm bool, hosts []string, services map[string]*Service) {
	switch {
	case row.Reload == "" || row.Reload == "none":
	case !slices.Contains(strategies, row.Reload):
		v.add(p+".reload", "%q is not one of none, %s", row.Reload, strings.Join(strategies, ", "))
	case !storm:
		v.add(p+".reload", "sets a reload strategy, but the scenario has no reload section")
	}
	for j, m := range row.Mitigations {
		mp := fmt.Sprintf("%s.mitigations[%d]", p, j)
		switch {
		case !slices.Contains(mitigations, m):
			v.add(mp, "%q is not one of %s", m, strings.Join(mitigations, ", "))
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
