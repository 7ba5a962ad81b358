package spec

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Vocabulary is what the lab's registries know; the runner builds it from them. Check checks a scenario's
// names against it, so that a new service, workload, analysis or mitigation needs no change here.
type Vocabulary struct {
	Services    map[string]ServiceKind  // by kind
	Workloads   map[string]WorkloadKind // by kind
	Analyses    []string                // analysis names a scenario may enable
	Mitigations []string                // matrix rows' mitigations
	Kernels     []string                // the guests' kernels a scenario may name besides host
}

// ServiceKind is what Check needs to know about one kind of service.
type ServiceKind struct {
	Proxy       bool     // has a mode, backends, a reload strategy
	Strategies  []string // reload strategies (proxies); the first is the default; none: not reloadable
	DefaultPort int      // 0: the scenario must set the port
	Speaks      string   // the protocol clients speak to it ("http", "mysql"); "" for a proxy (its mode decides)
	Options     []string // accepted option keys; nil means not checked
}

// WorkloadKind is what Check needs to know about one kind of workload.
type WorkloadKind struct {
	Speaks     string // "http" or "mysql": what its target must speak
	Persistent bool   // supports workload.persistent > 0
}

// Proxy modes.
const (
	modeHTTP = "http"
	modeTCP  = "tcp"
)

// Check is the second pass, after Parse, Load or Validate: it checks the names the lab's registries own
// (service and workload kinds, reload strategies, mitigations, analyses, option keys) against voc, and
// what depends on them: proxies' fields, the protocols workloads and proxies speak to their targets,
// persistent workloads, and that no two services share a port. It also applies the kind-dependent
// defaults (the kind's port, mode http and the kind's first strategy for proxies) and sets Service.Proxy.
// Expand and the runner rely on those, so call Check before them.
//
// The result is nil or an *Error holding every problem, sorted by line, with the file and line Parse
// recorded (none for a scenario built in code).
func Check(s *Scenario, voc Vocabulary) error {
	c := newChecker(&validator{file: s.File, lines: s.rowLines()}, voc, s)
	c.services()
	c.workload()
	c.reload()
	c.matrix()
	c.analyses()
	c.kernels()
	if len(c.problems) == 0 {
		return nil
	}
	c.problems = s.located(c.problems)
	sort.SliceStable(c.problems, func(i, j int) bool { return c.problems[i].Line < c.problems[j].Line })
	return &Error{Problems: c.problems}
}

type checker struct {
	*validator
	voc    Vocabulary
	s      *Scenario
	byName map[string]*Service
	protos map[string]string // what each service speaks, once known (see speaks)
}

// newChecker checks s with v's file, lines and problems; services are found by name (the first of a name).
func newChecker(v *validator, voc Vocabulary, s *Scenario) *checker {
	c := &checker{validator: v, voc: voc, s: s, byName: map[string]*Service{}, protos: map[string]string{}}
	for i := range s.Services {
		if _, dup := c.byName[s.Services[i].Name]; !dup {
			c.byName[s.Services[i].Name] = &s.Services[i]
		}
	}
	return c
}

// kind returns the vocabulary's entry for a service's kind.
func (c *checker) kind(sv *Service) (ServiceKind, bool) {
	k, ok := c.voc.Services[sv.Kind]
	return k, ok
}

func (c *checker) proxyKinds() []string {
	var out []string
	for name, k := range c.voc.Services {
		if k.Proxy {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (c *checker) services() {
	kinds := sortedKeys(c.voc.Services)
	for i := range c.s.Services {
		sv, p := &c.s.Services[i], fmt.Sprintf("services[%d]", i)
		k, ok := c.kind(sv)
		sv.Proxy = ok && k.Proxy
		switch {
		case sv.Kind == "":
			c.add(p+".kind", "missing; want one of %s", oneOf(kinds))
			continue
		case !ok:
			c.add(p+".kind", "%q is not one of %s", sv.Kind, oneOf(kinds))
			continue
		}
		switch {
		case c.set(p+".port", sv.Port != 0):
		case k.DefaultPort > 0:
			sv.Port = k.DefaultPort
		default:
			c.add(p+".port", "missing; %s has no default port", sv.Kind)
		}
		c.options(p+".options", sv.Kind, k, sv.Options)
		if k.Proxy {
			c.proxy(p, sv, k)
		} else {
			c.notProxy(p, sv)
		}
	}
	c.ports()
	for i := range c.s.Services {
		if sv := &c.s.Services[i]; sv.Proxy {
			c.backends(fmt.Sprintf("services[%d]", i), sv)
		}
	}
}

// options checks option keys against the kind's; empty keys were Parse's.
func (c *checker) options(path, kind string, k ServiceKind, opts map[string]string) {
	if k.Options == nil {
		return
	}
	allowed := slices.Sorted(slices.Values(k.Options))
	for _, key := range sortedKeys(opts) {
		if strings.TrimSpace(key) != "" && !slices.Contains(k.Options, key) {
			c.add(path+"["+key+"]", "unknown option %q for %s; allowed: %s", key, kind, orNone(allowed))
		}
	}
}

func (c *checker) notProxy(p string, sv *Service) {
	for _, f := range []struct {
		name string
		set  bool
	}{{"mode", sv.Mode != ""}, {"backends", len(sv.Backends) > 0}, {"reload", sv.Reload != ""}} {
		if f.set {
			c.add(p+"."+f.name, "%s applies only to proxies (%s), not %s", f.name, orNone(c.proxyKinds()), sv.Kind)
		}
	}
}

func (c *checker) proxy(p string, sv *Service, k ServiceKind) {
	if sv.Mode == "" {
		sv.Mode = modeHTTP
	} else if sv.Mode != modeHTTP && sv.Mode != modeTCP {
		c.add(p+".mode", "%q is not one of http, tcp", sv.Mode)
	}
	switch {
	case len(k.Strategies) == 0 && sv.Reload != "":
		c.add(p+".reload", "%s cannot be reloaded: it has no reload strategies", sv.Kind)
	case len(k.Strategies) == 0:
	case sv.Reload == "":
		sv.Reload = k.Strategies[0]
	case !slices.Contains(k.Strategies, sv.Reload):
		c.add(p+".reload", "%q is not one of %s", sv.Reload, strings.Join(k.Strategies, ", "))
	}
	if len(sv.Backends) == 0 {
		c.add(p+".backends", "a proxy needs at least one backend service")
	}
}

// backends checks that a proxy can forward to its backends: in http mode they must speak http; in tcp
// mode they must all speak the same protocol.
func (c *checker) backends(p string, sv *Service) {
	byProto := map[string][]string{}
	for i, b := range sv.Backends {
		target := c.byName[b]
		if target == nil || target == sv {
			continue
		}
		proto := c.speaks(target)
		if proto == "" {
			continue
		}
		byProto[proto] = append(byProto[proto], b)
		if sv.Mode == modeHTTP && proto != "http" {
			c.add(fmt.Sprintf("%s.backends[%d]", p, i), "backend %q is %s, which speaks %s: the proxy's mode must be tcp",
				b, target.Kind, proto)
		}
	}
	if sv.Mode == modeTCP && len(byProto) > 1 {
		var parts []string
		for _, proto := range sortedKeys(byProto) {
			parts = append(parts, fmt.Sprintf("%s speaks %s", strings.Join(byProto[proto], ", "), proto))
		}
		c.add(p+".backends", "backends speak different protocols (%s); a proxy forwards one", strings.Join(parts, "; "))
	}
}

// speaks is the protocol clients speak to sv: its kind's, or for a proxy http in http mode and its
// backends' in tcp mode. "" when unknown (an unknown kind, mixed backends, a cycle of proxies). Results
// are memoised, so chains of proxies cost one visit each.
func (c *checker) speaks(sv *Service) string {
	if p, ok := c.protos[sv.Name]; ok {
		return p
	}
	c.protos[sv.Name] = "" // while in progress: a cycle speaks nothing known
	p := c.protocol(sv)
	c.protos[sv.Name] = p
	return p
}

func (c *checker) protocol(sv *Service) string {
	k, ok := c.kind(sv)
	switch {
	case !ok:
		return ""
	case !k.Proxy:
		return k.Speaks
	case sv.Mode == modeHTTP:
		return "http"
	case sv.Mode != modeTCP:
		return ""
	}
	proto := ""
	for _, b := range sv.Backends {
		target := c.byName[b]
		if target == nil {
			continue
		}
		switch p := c.speaks(target); {
		case p == "":
			return ""
		case proto == "":
			proto = p
		case p != proto:
			return ""
		}
	}
	return proto
}

// ports checks that no two services listen on the same port of a host; it needs the default ports.
func (c *checker) ports() {
	used := map[string]string{} // "host:port" -> service
	for i := range c.s.Services {
		sv := &c.s.Services[i]
		if sv.Host == "" || sv.Port == 0 {
			continue
		}
		hp := fmt.Sprintf("%s:%d", sv.Host, sv.Port)
		if other, ok := used[hp]; ok {
			c.add(fmt.Sprintf("services[%d].port", i), "port %d on host %s is already used by service %s",
				sv.Port, sv.Host, other)
			continue
		}
		used[hp] = sv.Name
	}
}

func (c *checker) workload() {
	w := &c.s.Workload
	kinds := sortedKeys(c.voc.Workloads)
	wk, ok := c.voc.Workloads[w.Kind]
	switch {
	case w.Kind == "":
		c.add("workload.kind", "missing; want one of %s", oneOf(kinds))
		return
	case !ok:
		c.add("workload.kind", "%q is not one of %s", w.Kind, oneOf(kinds))
		return
	}
	if sv := c.byName[w.Target]; sv != nil && wk.Speaks != "" {
		if got := c.speaks(sv); got != "" && got != wk.Speaks {
			c.add("workload.target", "the %s workload needs a service that speaks %s (%s), not %q, which speaks %s",
				w.Kind, wk.Speaks, c.speakers(wk.Speaks), sv.Name, got)
		}
	}
	c.persistent("workload.persistent", w.Persistent, wk)
	for i, row := range c.s.Matrix {
		c.persistent(fmt.Sprintf("matrix[%d].persistent", i), row.Persistent, wk)
	}
}

// speakers says which services speak proto, for a message.
func (c *checker) speakers(proto string) string {
	var kinds []string
	for name, k := range c.voc.Services {
		if !k.Proxy && k.Speaks == proto {
			kinds = append(kinds, name)
		}
	}
	sort.Strings(kinds)
	proxy := "a proxy in tcp mode in front of one"
	if proto == "http" {
		proxy = "a proxy in front of one"
	}
	if len(kinds) == 0 {
		return "no service kind does"
	}
	return strings.Join(kinds, ", ") + ", or " + proxy
}

func (c *checker) persistent(path string, n int, wk WorkloadKind) {
	if n <= 0 || wk.Persistent {
		return
	}
	var kinds []string
	for name, k := range c.voc.Workloads {
		if k.Persistent {
			kinds = append(kinds, name)
		}
	}
	if len(kinds) == 0 {
		c.add(path, "no workload implements persistent connections")
		return
	}
	sort.Strings(kinds)
	noun := "workload"
	if len(kinds) > 1 {
		noun = "workloads"
	}
	c.add(path, "persistent connections are implemented for the %s %s only", strings.Join(kinds, ", "), noun)
}

// reloaded is the reload storm's service and its kind, when both are known.
func (c *checker) reloaded() (*Service, ServiceKind, bool) {
	if c.s.Reload == nil {
		return nil, ServiceKind{}, false
	}
	sv := c.byName[c.s.Reload.Service]
	if sv == nil {
		return nil, ServiceKind{}, false
	}
	k, ok := c.kind(sv)
	return sv, k, ok
}

func (c *checker) reload() {
	sv, k, ok := c.reloaded()
	switch {
	case !ok:
	case !k.Proxy:
		c.add("reload.service", "service %q is %s, not a proxy (%s)", sv.Name, sv.Kind, orNone(c.proxyKinds()))
	case len(k.Strategies) == 0:
		c.add("reload.service", "service %q is %s, which cannot be reloaded (no reload strategies)", sv.Name, sv.Kind)
	}
}

// matrix checks the rows' strategies, mitigations and option keys, against the kinds of their own cells
// (a row may replace a service: rowKind).
func (c *checker) matrix() {
	mitigations := slices.Sorted(slices.Values(c.voc.Mitigations))
	for i := range c.s.Matrix {
		row, p := &c.s.Matrix[i], fmt.Sprintf("matrix[%d]", i)
		c.rowStrategy(p, row)
		for j, m := range row.Mitigations {
			if m != "" && !slices.Contains(mitigations, m) {
				c.add(fmt.Sprintf("%s.mitigations[%d]", p, j), "%q is not one of %s", m, oneOf(mitigations))
			}
		}
		for _, name := range sortedKeys(row.Services) {
			if kind, k, ok := c.rowKind(row, name); ok {
				c.options(p+".services["+name+"]", kind, k, row.Services[name])
			}
		}
	}
	c.replacements()
}

// rowStrategy checks a row's reload strategy against the strategies of its cell's reloaded service.
func (c *checker) rowStrategy(p string, row *CellSpec) {
	if c.s.Reload == nil || row.Reload == "" || row.Reload == "none" {
		return
	}
	kind, k, ok := c.rowKind(row, c.s.Reload.Service)
	if !ok || !k.Proxy || len(k.Strategies) == 0 || slices.Contains(k.Strategies, row.Reload) {
		return
	}
	whose := ""
	if _, replaced := row.Replace[c.s.Reload.Service]; replaced {
		whose = " (the strategies of " + kind + ", which this row puts in place of " + c.s.Reload.Service + ")"
	}
	c.add(p+".reload", "%q is not one of none, %s%s", row.Reload, strings.Join(k.Strategies, ", "), whose)
}

func (c *checker) analyses() {
	known := slices.Sorted(slices.Values(c.voc.Analyses))
	for i, a := range c.s.Analyses {
		if strings.TrimSpace(a) != "" && !slices.Contains(known, a) {
			c.add(fmt.Sprintf("analyses[%d]", i), "%q is not one of %s", a, oneOf(known))
		}
	}
}

// oneOf lists the names a value may take, for "is not one of ...".
func oneOf(names []string) string {
	if len(names) == 0 {
		return "the lab's (it knows none)"
	}
	return strings.Join(names, ", ")
}
