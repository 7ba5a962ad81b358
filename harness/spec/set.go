package spec

import (
	"errors"
	"fmt"
	"strings"
)

// ParseSet parses a command-line sysctl axis, HOST:SYSCTL=V1,V2,... (e.g. proxy:net.ipv4.tcp_tw_reuse=0,1),
// into an Axis. Values are split at commas; a value with a comma cannot be given this way.
func ParseSet(arg string) (Axis, error) {
	host, rest, ok := strings.Cut(arg, ":")
	name, vals, ok2 := strings.Cut(rest, "=")
	if !ok || !ok2 || host == "" || name == "" || vals == "" {
		return Axis{}, fmt.Errorf("--set %q: want HOST:SYSCTL=V1,V2 (e.g. proxy:net.ipv4.tcp_tw_reuse=0,1)", arg)
	}
	values := strings.Split(vals, ",")
	for i := range values {
		values[i] = strings.TrimSpace(values[i])
		if values[i] == "" {
			return Axis{}, fmt.Errorf("--set %q: empty value", arg)
		}
	}
	return Axis{Sysctl: &SysctlAxis{Host: host, Name: strings.TrimSpace(name), Values: values}}, nil
}

// AddAxis crosses every cell of a parsed scenario with the levels of a (an axis from the command line,
// e.g. `faultlab run --set`): cell X becomes X.<level> for each level (the level's name alone for a scenario
// without a matrix), each claim is made at every level (X better_than Y becomes X.<l> better_than Y.<l>),
// and the reference becomes the reference cell's at the first level. A level that sets what a cell already
// sets is an error (say it in the file instead). The scenario is then validated again (the record budget
// grows with the cells); errors name source (e.g. "--set proxy:net.ipv4.tcp_tw_reuse=0,1").
func AddAxis(s *Scenario, a Axis, source string) error {
	v := &validator{file: s.File}
	var hosts []string
	for _, h := range s.Hosts {
		hosts = append(hosts, h.Name)
	}
	const p = "--set"
	name, levels := v.axisLevels(p, &a, hosts)
	for _, ax := range s.Axes {
		if axisTitle(ax) == name {
			v.add(p, "the scenario already has an axis %q", name)
		}
	}
	if err := setErr(source, v.problems); err != nil {
		return err
	}
	for i := range levels {
		levels[i].path = fmt.Sprintf("--set %s (value %d)", source, i+1)
	}
	if n := max(len(s.Matrix), 1) * len(levels); n > MaxCells {
		return fmt.Errorf("%s: %d cells with this axis, above the limit of %d", source, n, MaxCells)
	}
	if !crossEvery(v, s, p, a, name, levels) {
		return setErr(source, v.problems)
	}
	again := &validator{file: s.File, lines: s.rowLines()}
	again.run(s)
	if len(again.problems) > 0 {
		return &Error{Problems: s.located(again.problems)}
	}
	return nil
}

// crossEvery crosses every cell of s (its matrix, or the one default cell of a scenario without one) with
// the levels of axis a, named name: cell X becomes X.<level> (the level alone without a matrix), each claim is
// made at every level and the reference moves to the first level. A level that sets what a cell already sets
// is a problem at p in v, and nothing changes.
func crossEvery(v *validator, s *Scenario, p string, a Axis, name string, levels []level) bool {
	bare := len(s.Matrix) == 0
	rows := make([]genRow, 0, max(len(s.Matrix), 1))
	for k, row := range s.Matrix {
		o := &rowOrigin{cell: row.Name, base: fmt.Sprintf("matrix[%d]", k)}
		if k < len(s.origins) && s.origins[k] != nil {
			o = s.origins[k]
		}
		if o.fields == nil || o.base != "" {
			o = &rowOrigin{cell: o.cell, base: o.base, fields: ownFields(row, o.base)}
		}
		rows = append(rows, genRow{row: row, origin: o})
	}
	if bare {
		rows = append(rows, genRow{origin: &rowOrigin{fields: map[string]string{}}})
	}
	crossed, ok := v.cross(p, rows, name, levels)
	if !ok {
		return false
	}
	s.Matrix, s.origins = make([]CellSpec, len(crossed)), make([]*rowOrigin, len(crossed))
	for i, r := range crossed {
		s.Matrix[i], s.origins[i] = r.row, r.origin
	}
	a.Name = name
	s.Axes = append(s.Axes, a)
	at := func(cell, l string) string {
		if bare {
			return l
		}
		return cell + "." + l
	}
	if s.Reference != "" {
		s.Reference = at(s.Reference, levels[0].name)
	}
	var exps []Expectation
	var from []int
	for i, e := range s.Expect {
		for _, l := range levels {
			from = append(from, i)
			if s.expectFrom != nil {
				from[len(from)-1] = s.expectFrom[i]
			}
			x := e
			x.Cell = at(e.Cell, l.name)
			if e.BetterThan != "" {
				x.BetterThan = at(e.BetterThan, l.name)
			}
			if e.FewerResetsThan != "" {
				x.FewerResetsThan = at(e.FewerResetsThan, l.name)
			}
			exps = append(exps, x)
		}
	}
	s.Expect, s.expectFrom = exps, from
	return true
}

// axisTitle is an axis's name as axisLevels gives it.
func axisTitle(a Axis) string {
	switch {
	case a.Name != "":
		return a.Name
	case len(a.Reload) > 0:
		return "reload"
	case len(a.Rate) > 0:
		return "rate"
	case a.Sysctl != nil:
		return a.Sysctl.Name[strings.LastIndexByte(a.Sysctl.Name, '.')+1:]
	}
	return ""
}

// setErr turns the problems found with a command-line axis into one error naming it.
func setErr(source string, problems []Problem) error {
	if len(problems) == 0 {
		return nil
	}
	var errs []error
	for _, p := range problems {
		field := strings.TrimPrefix(strings.TrimPrefix(p.Field, "--set"), ".")
		if field != "" {
			field += ": "
		}
		errs = append(errs, fmt.Errorf("%s: %s%s", source, field, p.Msg))
	}
	return errors.Join(errs...)
}

// ownFields lists the fields a row written in the file sets, each at its path under base.
func ownFields(row CellSpec, base string) map[string]string {
	f := map[string]string{}
	add := func(field string, set bool) {
		if set {
			f[field] = base + field
		}
	}
	add(".reload", row.Reload != "")
	add(".reload_interval", row.ReloadInterval != 0)
	add(".reload_jitter", row.ReloadJitter != 0)
	add(".rate", row.Rate != 0)
	add(".persistent", row.Persistent != 0)
	add(".impair", row.Impair != nil)
	for j := range row.Mitigations {
		add(fmt.Sprintf(".mitigations[%d]", j), true)
	}
	for _, nested := range []struct {
		field string
		m     map[string]map[string]string
	}{{".sysctls", row.Sysctls}, {".services", row.Services}} {
		for _, outer := range sortedKeys(nested.m) {
			for _, k := range sortedKeys(nested.m[outer]) {
				add(nested.field+"["+outer+"]["+k+"]", true)
			}
		}
	}
	for _, k := range sortedKeys(row.WorkloadOptions) {
		add(".workload_options["+k+"]", true)
	}
	for _, k := range sortedKeys(row.Replace) {
		add(".replace["+k+"]", true)
	}
	return f
}
