package spec

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Axis is one named dimension of the matrix. Its levels are matrix rows without names of their own; the
// product of all axes gives one cell per combination, named by its levels joined with "." in axis order.
// Exactly one of Levels, Reload, Rate and Sysctl is set; the last three are shorthands:
//
//	axes:
//	  - {name: strategy, reload: [legacy, socket-transfer]}        # levels legacy, socket-transfer
//	  - {name: rate, rate: [1000, 3000]}                             # levels rate1000, rate3000
//	  - {sysctl: {host: proxy, name: net.ipv4.tcp_tw_reuse, values: ["0", "1"]}}  # tcp_tw_reuse-0, -1
//	  - name: buffer
//	    levels:
//	      - {name: buf16k, services: {lb: {bufsize: "16384"}}}
//	      - {name: buf64k, services: {lb: {bufsize: "65536"}}}
//
// Two axes may not set the same field of a cell (the same sysctl, option, reload, rate...): that is an error
// at the second axis.
type Axis struct {
	// Name names the axis in exclusions and in the results' columns (default: reload, rate, or the
	// sysctl's last component).
	Name   string      `yaml:"name"`
	Levels []CellSpec  `yaml:"levels"`
	Reload []string    `yaml:"reload"`
	Rate   []float64   `yaml:"rate"`
	Sysctl *SysctlAxis `yaml:"sysctl"`
}

// SysctlAxis is an axis of the values of one sysctl on one host; each value is a level named
// <last component>-<value> (e.g. tcp_tw_reuse-1; characters a cell name cannot hold become "-").
type SysctlAxis struct {
	Host   string   `yaml:"host"`
	Name   string   `yaml:"name"`
	Values []string `yaml:"values"`
}

// MaxCells bounds the cells a scenario may have after its axes are multiplied out.
const MaxCells = 1024

var (
	axisName  = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	levelName = regexp.MustCompile(`^[a-z0-9][a-z0-9_+-]*$`)
	notLevel  = regexp.MustCompile(`[^a-z0-9_+-]+`)
)

// level is one level of an axis: its name, the row it applies and where it was written.
type level struct {
	name string
	row  CellSpec
	path string // axes[1].levels[0], axes[0].reload[1], --set ...
	// whole: the path names the whole level (a shorthand's value), not a row whose fields have paths.
	whole bool
}

// rowOrigin says which axis level set which field of a generated row: fields maps a field of the row
// (".reload", ".sysctls[proxy][net.ipv4.tcp_tw_reuse]") to the path that set it; base is the path of a row
// written in the file that an axis added by AddAxis crossed ("" for a row of the scenario's own axes).
type rowOrigin struct {
	cell   string
	base   string
	fields map[string]string
}

// axisLevels resolves an axis into its name and levels, reporting what is wrong with it.
func (v *validator) axisLevels(p string, a *Axis, hosts []string) (string, []level) {
	set := 0
	for _, n := range []int{len(a.Levels), len(a.Reload), len(a.Rate)} {
		if n > 0 {
			set++
		}
	}
	if a.Sysctl != nil {
		set++
	}
	if set != 1 {
		v.add(p, "give exactly one of levels, reload, rate, sysctl (with at least one value)")
		return "", nil
	}
	var name string
	var levels []level
	switch {
	case len(a.Levels) > 0:
		name, levels = a.Name, v.rowLevels(p, a.Levels)
	case len(a.Reload) > 0:
		name = "reload"
		for i, r := range a.Reload {
			levels = append(levels, level{name: r, row: CellSpec{Reload: r}, path: fmt.Sprintf("%s.reload[%d]", p, i), whole: true})
		}
	case len(a.Rate) > 0:
		name = "rate"
		for i, r := range a.Rate {
			v.rate(fmt.Sprintf("%s.rate[%d]", p, i), r)
			levels = append(levels, level{name: "rate" + strconv.FormatFloat(r, 'g', -1, 64), row: CellSpec{Rate: r},
				path: fmt.Sprintf("%s.rate[%d]", p, i), whole: true})
		}
	default:
		name, levels = v.sysctlLevels(p+".sysctl", a.Sysctl, hosts)
	}
	if a.Name != "" {
		name = a.Name
	}
	if !axisName.MatchString(name) {
		v.add(p+".name", "%q must match %s (name the axis)", name, pattern(axisName))
	}
	for i, l := range levels {
		switch j := slices.IndexFunc(levels, func(o level) bool { return o.name == l.name }); {
		case !levelName.MatchString(l.name):
			v.add(l.path, "level %q must match %s (cells are named by their levels joined with \".\")", l.name,
				pattern(levelName))
		case j < i:
			v.add(l.path, "duplicate level %q (also %s)", l.name, levels[j].path)
		}
	}
	return name, levels
}

func (v *validator) rowLevels(p string, rows []CellSpec) []level {
	var levels []level
	for i, row := range rows {
		lp := fmt.Sprintf("%s.levels[%d]", p, i)
		if row.Name == "" {
			v.add(lp+".name", "missing; want a level name matching %s", pattern(levelName))
		}
		levels = append(levels, level{name: row.Name, row: row, path: lp})
	}
	return levels
}

func (v *validator) sysctlLevels(p string, a *SysctlAxis, hosts []string) (string, []level) {
	v.hostRef(p+".host", a.Host, hosts)
	if a.Name == "" {
		v.add(p+".name", "missing; want a full sysctl name, e.g. net.ipv4.tcp_tw_reuse")
		return "", nil
	}
	if len(a.Values) == 0 {
		v.add(p+".values", "missing; want at least one value")
	}
	short := a.Name[strings.LastIndexByte(a.Name, '.')+1:]
	var levels []level
	for i, val := range a.Values {
		lv := strings.Trim(notLevel.ReplaceAllString(strings.ToLower(val), "-"), "-")
		levels = append(levels, level{name: short + "-" + lv, path: fmt.Sprintf("%s.values[%d]", p, i), whole: true,
			row: CellSpec{Sysctls: map[string]map[string]string{a.Host: {a.Name: val}}}})
	}
	return short, levels
}

// genRow is a row of the product on its way into the matrix.
type genRow struct {
	row    CellSpec
	origin *rowOrigin
}

// expandAxes puts the cells of the axes' product, less the excluded ones, before the matrix's own rows, and
// records where each generated field came from. It does nothing the second time (Validate after Parse).
func (v *validator) expandAxes(s *Scenario) {
	if s.axesDone {
		return
	}
	s.axesDone = true
	if len(s.Axes) == 0 {
		if len(s.Exclude) > 0 {
			v.add("exclude", "drops cells of axes, but the scenario has no axes")
		}
		return
	}
	var hosts []string
	for _, h := range s.Hosts {
		hosts = append(hosts, h.Name)
	}
	before := len(v.problems)
	var names []string
	var all [][]level
	for i := range s.Axes {
		p := fmt.Sprintf("axes[%d]", i)
		name, levels := v.axisLevels(p, &s.Axes[i], hosts)
		if j := slices.Index(names, name); j >= 0 && name != "" {
			v.add(p+".name", "duplicate axis %q (also axes[%d])", name, j)
		}
		names, all = append(names, name), append(all, levels)
	}
	if len(v.problems) > before {
		return
	}
	rows := []genRow{{origin: &rowOrigin{fields: map[string]string{}}}}
	total := 1
	for i, levels := range all {
		if total *= len(levels); total > MaxCells {
			v.add("axes", "the axes multiply out to %d cells or more, above the limit of %d", total, MaxCells)
			return
		}
		var ok bool
		if rows, ok = v.cross(fmt.Sprintf("axes[%d]", i), rows, names[i], levels); !ok {
			return
		}
	}
	rows = v.exclude(s.Exclude, rows, names, all)
	gen := make([]CellSpec, len(rows))
	origins := make([]*rowOrigin, len(rows), len(rows)+len(s.Matrix))
	for i, r := range rows {
		gen[i], origins[i] = r.row, r.origin
	}
	s.Matrix = append(gen, s.Matrix...)
	s.origins = append(origins, make([]*rowOrigin, len(s.Matrix)-len(gen))...)
	for i := len(gen); i < len(s.Matrix); i++ {
		s.origins[i] = &rowOrigin{cell: s.Matrix[i].Name, base: fmt.Sprintf("matrix[%d]", i-len(gen))}
	}
}

// cross multiplies rows by an axis's levels; a level that sets a field a row already has is a problem at p.
func (v *validator) cross(p string, rows []genRow, axis string, levels []level) ([]genRow, bool) {
	out := make([]genRow, 0, len(rows)*len(levels))
	for _, r := range rows {
		for _, l := range levels {
			g, clash := join2(r, l, axis)
			if clash != "" {
				by := r.origin.fields[clash]
				v.add(p, "level %s sets %s, which %s already sets: two axes cannot set the same field of a cell",
					l.name, strings.TrimPrefix(clash, "."), cmpOr(by, "another axis"))
				return nil, false
			}
			out = append(out, g)
		}
	}
	return out, true
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// join2 applies level l of axis to a copy of row r; clash names the first field both set.
func join2(r genRow, l level, axis string) (genRow, string) {
	row := cloneRow(r.row)
	o := &rowOrigin{cell: r.origin.cell, base: r.origin.base, fields: maps.Clone(r.origin.fields)}
	row.Name = strings.TrimPrefix(row.Name+"."+l.name, ".")
	o.cell = row.Name
	row.Axes = merged(row.Axes, map[string]string{axis: l.name})
	from := func(field string) string {
		if l.whole {
			return l.path
		}
		return l.path + field
	}
	claim := func(field string) bool {
		if _, taken := o.fields[field]; taken {
			return false
		}
		o.fields[field] = from(field)
		return true
	}
	lr := l.row
	scalars := []struct {
		field string
		set   bool
		apply func()
	}{
		{".reload", lr.Reload != "", func() { row.Reload = lr.Reload }},
		{".reload_interval", lr.ReloadInterval != 0, func() { row.ReloadInterval = lr.ReloadInterval }},
		{".reload_jitter", lr.ReloadJitter != 0, func() { row.ReloadJitter = lr.ReloadJitter }},
		{".rate", lr.Rate != 0, func() { row.Rate = lr.Rate }},
		{".persistent", lr.Persistent != 0, func() { row.Persistent = lr.Persistent }},
		{".impair", lr.Impair != nil, func() { row.Impair = lr.Impair }},
	}
	for _, sc := range scalars {
		if !sc.set {
			continue
		}
		if !claim(sc.field) {
			return r, sc.field
		}
		sc.apply()
	}
	for j, m := range lr.Mitigations {
		o.fields[fmt.Sprintf(".mitigations[%d]", len(row.Mitigations))] = from(fmt.Sprintf(".mitigations[%d]", j))
		row.Mitigations = append(row.Mitigations, m)
	}
	note := func(field string) {
		if _, taken := o.fields[field]; !taken {
			o.fields[field] = from(field)
		}
	}
	if f := mergeNested(&row.Sysctls, lr.Sysctls, ".sysctls", claim, note); f != "" {
		return r, f
	}
	if f := mergeNested(&row.Services, lr.Services, ".services", claim, note); f != "" {
		return r, f
	}
	for _, k := range sortedKeys(lr.WorkloadOptions) {
		if !claim(".workload_options[" + k + "]") {
			return r, ".workload_options[" + k + "]"
		}
		row.WorkloadOptions = merged(row.WorkloadOptions, map[string]string{k: lr.WorkloadOptions[k]})
	}
	for _, k := range sortedKeys(lr.Replace) {
		if !claim(".replace[" + k + "]") {
			return r, ".replace[" + k + "]"
		}
		if row.Replace == nil {
			row.Replace = map[string]ServiceReplace{}
		}
		row.Replace[k] = cloneReplace(lr.Replace)[k]
	}
	return genRow{row: row, origin: o}, ""
}

// mergeNested merges src (outer name -> key -> value) into *dst, claiming each outer[key] field and noting
// where the first outer came from.
func mergeNested(dst *map[string]map[string]string, src map[string]map[string]string, field string,
	claim func(string) bool, note func(string)) string {
	for _, outer := range sortedKeys(src) {
		note(field + "[" + outer + "]")
		for _, k := range sortedKeys(src[outer]) {
			f := field + "[" + outer + "][" + k + "]"
			if !claim(f) {
				return f
			}
			if *dst == nil {
				*dst = map[string]map[string]string{}
			}
			(*dst)[outer] = merged((*dst)[outer], map[string]string{k: src[outer][k]})
		}
	}
	return ""
}

// exclude drops the rows an exclusion matches; an exclusion naming an unknown axis or level, or matching
// no cell, is a problem.
func (v *validator) exclude(excl []map[string]string, rows []genRow, names []string, all [][]level) []genRow {
	used := make([]bool, len(excl))
	for i, e := range excl {
		p := fmt.Sprintf("exclude[%d]", i)
		if len(e) == 0 {
			v.add(p, "empty; name an axis and a level, e.g. {%s: %s}", names[0], all[0][0].name)
			used[i] = true
		}
		for _, axis := range sortedKeys(e) {
			j := slices.Index(names, axis)
			if j < 0 {
				v.add(p+"["+axis+"]", "no axis %q (axes: %s)", axis, listed(names))
				used[i] = true
				continue
			}
			if !slices.ContainsFunc(all[j], func(l level) bool { return l.name == e[axis] }) {
				v.add(p+"["+axis+"]", "no level %q on axis %s (levels: %s)", e[axis], axis, levelList(all[j]))
				used[i] = true
			}
		}
	}
	kept := rows[:0:0]
	for _, r := range rows {
		drop := false
		for i, e := range excl {
			if len(e) > 0 && matches(r.row.Axes, e) {
				drop, used[i] = true, true
			}
		}
		if !drop {
			kept = append(kept, r)
		}
	}
	for i := range excl {
		if !used[i] {
			v.add(fmt.Sprintf("exclude[%d]", i), "matches no cell of the axes")
		}
	}
	if len(kept) == 0 && len(rows) > 0 {
		v.add("exclude", "drops every cell of the axes")
	}
	return kept
}

func matches(levels, e map[string]string) bool {
	for axis, l := range e {
		if levels[axis] != l {
			return false
		}
	}
	return true
}

func levelList(levels []level) string {
	names := make([]string, len(levels))
	for i, l := range levels {
		names[i] = l.name
	}
	return strings.Join(names, ", ")
}

func cloneRow(r CellSpec) CellSpec {
	r.Mitigations = slices.Clone(r.Mitigations)
	r.Sysctls = cloneNested(r.Sysctls)
	r.Services = cloneNested(r.Services)
	r.WorkloadOptions = maps.Clone(r.WorkloadOptions)
	r.Replace = cloneReplace(r.Replace)
	r.Axes = maps.Clone(r.Axes)
	return r
}

func cloneAxes(axes []Axis) []Axis {
	out := slices.Clone(axes)
	for i := range out {
		out[i].Levels = slices.Clone(axes[i].Levels)
		for j := range out[i].Levels {
			out[i].Levels[j] = cloneRow(axes[i].Levels[j])
		}
		out[i].Reload = slices.Clone(axes[i].Reload)
		out[i].Rate = slices.Clone(axes[i].Rate)
		if axes[i].Sysctl != nil {
			sa := *axes[i].Sysctl
			sa.Values = slices.Clone(sa.Values)
			out[i].Sysctl = &sa
		}
	}
	return out
}

// located rewrites the problems of generated rows (matrix[k]...) to the axis level that set the field, or to
// the row written in the file, and drops the duplicates this makes (a bad level shows in every cell it is
// in).
func (s *Scenario) located(problems []Problem) []Problem {
	if len(s.origins) == 0 && s.expectFrom == nil {
		return problems
	}
	v := &validator{lines: s.lines}
	seen := map[Problem]bool{}
	out := problems[:0:0]
	for _, p := range problems {
		if k, rest, ok := matrixRow(p.Field); ok && k < len(s.origins) && s.origins[k] != nil {
			p.Field, p.Msg = s.origins[k].locate(rest, p.Msg)
			if s.lines != nil {
				p.Line = v.line(p.Field)
			}
			if strings.HasPrefix(p.Field, "--set") {
				p.Line = 0
			}
		}
		if n, rest, ok := indexed(p.Field, "expect["); ok && n < len(s.expectFrom) {
			p.Field = fmt.Sprintf("expect[%d]%s", s.expectFrom[n], rest)
			if s.lines != nil {
				p.Line = v.line(p.Field)
			}
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// Located is where a problem found in the expanded matrix was written: a field of a row the axes, --set or the
// kernels generated (matrix[k]...) becomes the field of the axis level or of the file's row that set it, on
// its line. Other problems come back as they are.
func (s *Scenario) Located(p Problem) Problem { return s.located([]Problem{p})[0] }

// matrixRow splits "matrix[k].rest" into k and ".rest".
func matrixRow(field string) (int, string, bool) { return indexed(field, "matrix[") }

// indexed splits "<list>[k].rest" into k and ".rest", prefix being "<list>[".
func indexed(field, prefix string) (int, string, bool) {
	rest, ok := strings.CutPrefix(field, prefix)
	if !ok {
		return 0, "", false
	}
	i := strings.IndexByte(rest, ']')
	if i < 0 {
		return 0, "", false
	}
	k, err := strconv.Atoi(rest[:i])
	return k, rest[i+1:], err == nil
}

// locate maps a field of the generated row to where it was written; a field no level set is named in the
// message with the cell.
func (o *rowOrigin) locate(rest, msg string) (string, string) {
	best := ""
	for f := range o.fields {
		if (rest == f || strings.HasPrefix(rest, f) && (rest[len(f)] == '.' || rest[len(f)] == '[')) && len(f) > len(best) {
			best = f
		}
	}
	if best != "" {
		return o.fields[best] + rest[len(best):], msg
	}
	if o.base != "" {
		return o.base + rest, msg
	}
	if rest == "" {
		return "axes", fmt.Sprintf("cell %s: %s", o.cell, msg)
	}
	return "axes", fmt.Sprintf("cell %s: %s: %s", o.cell, strings.TrimPrefix(rest, "."), msg)
}

// rowLines is the lines map for the matrix and the claims as they are now: a row written in the file at its
// index after the axes' rows, a claim AddAxis crossed at its new index. The axes' own rows have no lines
// (located names their levels), so a zero in them counts as absent.
func (s *Scenario) rowLines() map[string]int {
	if s.lines == nil || len(s.origins) == 0 && s.expectFrom == nil {
		return s.lines
	}
	rowAt := map[int]int{} // index in the file -> index now
	for k, o := range s.origins {
		if o != nil && o.base != "" {
			if i, _, ok := matrixRow(o.base); ok {
				rowAt[i] = k
			}
		}
	}
	out := make(map[string]int, len(s.lines))
	for key, line := range s.lines {
		switch i, rest, ok := matrixRow(key); {
		case ok && len(s.origins) > 0:
			if k, kept := rowAt[i]; kept {
				out[fmt.Sprintf("matrix[%d]%s", k, rest)] = line
			}
		case strings.HasPrefix(key, "expect[") && s.expectFrom != nil:
		default:
			out[key] = line
		}
	}
	for n, i := range s.expectFrom {
		for key, line := range s.lines {
			if j, rest, ok := indexed(key, "expect["); ok && j == i {
				out[fmt.Sprintf("expect[%d]%s", n, rest)] = line
			}
		}
	}
	return out
}

// AxisLevels is one axis of the expanded matrix: its name and its levels in cell order.
type AxisLevels struct {
	Name   string
	Levels []string
}

// MatrixAxes lists the axes of the matrix (the file's and those AddAxis added), each with the levels its
// cells have, in order; none when the scenario has no axes or an exclusion dropped every cell of one.
func (s *Scenario) MatrixAxes() []AxisLevels {
	var out []AxisLevels
	for _, a := range s.Axes {
		al := AxisLevels{Name: axisTitle(a)}
		for _, row := range s.Matrix {
			if l, ok := row.Axes[al.Name]; ok && !slices.Contains(al.Levels, l) {
				al.Levels = append(al.Levels, l)
			}
		}
		if len(al.Levels) > 0 {
			out = append(out, al)
		}
	}
	return out
}
