package spec

import (
	"fmt"
	"slices"
	"strings"
)

// A matrix row's replace section (ServiceReplace): its structure is checked here by the validator, its
// kind-dependent rules by the checker, which checks each row's cell as a whole with the replacements in
// place (checkReplaced).

// replace checks the structure of a row's replacements: each names a service and gives a kind; a given
// host, port or backends must exist or be in range.
func (v *validator) replace(p string, row *CellSpec, s *Scenario, hosts []string, services map[string]*Service) {
	for _, name := range sortedKeys(row.Replace) {
		r, rp := row.Replace[name], p+".replace["+name+"]"
		if _, ok := services[name]; !ok {
			v.add(rp, "no service %q (services: %s)", name, listed(sortedKeys(services)))
			continue
		}
		if r.Kind == "" {
			v.add(rp+".kind", "missing; a replacement names the kind of service it puts in place of %s", name)
		}
		if r.Host != "" {
			v.hostRef(rp+".host", r.Host, hosts)
		}
		if v.set(rp+".port", r.Port != 0) && (r.Port < 1 || r.Port > 65535) {
			v.add(rp+".port", "%d out of range 1..65535", r.Port)
		}
		if _, ok := r.Options[""]; ok {
			v.add(rp+".options", "empty option name")
		}
		v.backendRefs(rp, name, r.Backends, services)
		if s.Reload != nil && s.Reload.Service == name && r.Reload != "" && row.Reload != "" {
			v.add(rp+".reload", "both %s.reload and this set the reloaded service's strategy; keep one", p)
		}
	}
}

// backendRefs checks that a proxy's backends name other services, once each.
func (v *validator) backendRefs(p, self string, backends []string, byName map[string]*Service) {
	for i, b := range backends {
		bp := fmt.Sprintf("%s.backends[%d]", p, i)
		switch _, ok := byName[b]; {
		case !ok:
			v.add(bp, "no service %q (services: %s)", b, listed(sortedKeys(byName)))
		case b == self:
			v.add(bp, "a proxy cannot be its own backend")
		case slices.Index(backends, b) < i:
			v.add(bp, "duplicate backend %q", b)
		}
	}
}

// replacements checks every row that replaces services: the cell's services, workload and reload storm as
// they will run, with the replacements' kinds. It fills in each replacement's Proxy and defaults (mode,
// strategy) so that Expand needs no vocabulary.
func (c *checker) replacements() {
	for i := range c.s.Matrix {
		if row := &c.s.Matrix[i]; len(row.Replace) > 0 {
			c.checkReplaced(i, row)
		}
	}
}

// checkReplaced checks row i's cell with its replacements in place, as Check checks the scenario, and
// reports what the replacements broke at the row: a problem of a replaced service at its replacement's
// field, any other new one at the row's replace field, naming the field it concerns.
func (c *checker) checkReplaced(i int, row *CellSpec) {
	sc := clone(c.s)
	sc.Matrix, sc.lines = nil, nil
	if row.Reload == "none" {
		sc.Reload = nil // no storm in this cell: its reloaded service need not be reloadable
	}
	replaced := map[int]string{} // service index -> the row's replace path
	for _, name := range sortedKeys(row.Replace) {
		r := row.Replace[name]
		k, known := c.voc.Services[r.Kind]
		r.Proxy = known && k.Proxy
		row.Replace[name] = r
		if j := slices.IndexFunc(sc.Services, func(sv Service) bool { return sv.Name == name }); j >= 0 && r.Kind != "" {
			sc.Services[j] = r.apply(sc.Services[j])
			replaced[j] = fmt.Sprintf("matrix[%d].replace[%s]", i, name)
		}
	}
	sub := newChecker(&validator{}, c.voc, &sc)
	sub.services()
	sub.workload()
	sub.reload()
	c.reportReplaced(i, sub.problems, replaced)
	for j := range replaced {
		sv := sc.Services[j]
		r := row.Replace[sv.Name]
		r.Mode, r.Reload, r.Port = sv.Mode, sv.Reload, sv.Port
		row.Replace[sv.Name] = r
	}
}

// reportReplaced adds the problems of row i's cell that the scenario itself does not have.
func (c *checker) reportReplaced(i int, problems []Problem, replaced map[int]string) {
	base := map[string]bool{}
	for _, p := range c.problems {
		base[p.Field+"\x00"+p.Msg] = true
	}
	for _, p := range problems {
		if base[p.Field+"\x00"+p.Msg] {
			continue
		}
		if field, ok := replacedField(p.Field, replaced); ok {
			c.add(field, "%s", p.Msg)
			continue
		}
		c.add(fmt.Sprintf("matrix[%d].replace", i), "in this cell, %s: %s", p.Field, p.Msg)
	}
}

// replacedField maps a field of a replaced service (services[j]...) to its replacement's.
func replacedField(field string, replaced map[int]string) (string, bool) {
	for j, rp := range replaced {
		prefix := fmt.Sprintf("services[%d]", j)
		if rest, ok := strings.CutPrefix(field, prefix); ok && (rest == "" || rest[0] == '.' || rest[0] == '[') {
			return rp + rest, true
		}
	}
	return "", false
}

// rowKind is the kind of the named service in a row's cell: the replacement's, else the service's.
func (c *checker) rowKind(row *CellSpec, name string) (string, ServiceKind, bool) {
	kind := ""
	if r, ok := row.Replace[name]; ok {
		kind = r.Kind
	} else if sv := c.byName[name]; sv != nil {
		kind = sv.Kind
	}
	k, ok := c.voc.Services[kind]
	return kind, k, ok
}
