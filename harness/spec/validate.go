package spec

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Problem is one thing wrong with a scenario file.
type Problem struct {
	File  string
	Line  int    // 1-based; 0 when the scenario was not parsed from a file
	Field string // path of the field, e.g. hosts[1].sysctls[net.ipv4.tcp_tw_recycle]; empty for the file
	Msg   string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error holds every problem found in a scenario, in file order.
type Error struct {
	Problems []Problem
}

// Error lists the problems one per line as "file:line: field: message".
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// The closed sets of the scenario language.
var (
	kinds       = []string{"haproxy", "nginx", "mariadb", "tengine"}
	proxyKinds  = []string{"haproxy", "tengine"}
	strategies  = []string{"legacy", "legacy-st", "socket-transfer", "master-worker"}
	mitigations = []string{"syn-drop", "tcp_migrate_req"}
	claims      = "failures, better_than, fewer_resets_than, connect_p99_at_least"

	hostName    = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)
	serviceName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	cellName    = regexp.MustCompile(`^[a-z0-9][a-z0-9_.+-]*$`)
)

// Limits.
const (
	maxRate        = 100000
	maxRepetitions = 1000
	maxAddrs       = 16
)

// Defaults.
const (
	defaultTimeout   = 5 * time.Second
	defaultBefore    = 20 * time.Millisecond
	defaultAfter     = 100 * time.Millisecond
	defaultAlpha     = 0.01
	defaultMariaPort = 3306
	defaultHTTPPort  = 80
)

// IsProxy reports whether the service is a proxy (haproxy, tengine): one with a mode, backends and a
// reload strategy.
func (s Service) IsProxy() bool { return slices.Contains(proxyKinds, s.Kind) }

// Validate fills in defaults and checks a scenario built in code, with the same rules Parse applies. A
// zero value counts as absent. Problems carry s.File but no line.
func Validate(s *Scenario) error {
	v := &validator{file: s.File}
	v.run(s)
	if len(v.problems) > 0 {
		return &Error{Problems: v.problems}
	}
	return nil
}

// validator applies defaults and collects problems. lines maps field paths to the line they were read
// from; bad holds paths whose value had the wrong type (already reported, so not checked again).
type validator struct {
	file     string
	lines    map[string]int
	bad      map[string]bool
	problems []Problem
}

func (v *validator) add(path, format string, args ...any) {
	for p := path; ; p = parent(p) {
		if v.bad[p] {
			return
		}
		if p == "" {
			break
		}
	}
	v.problems = append(v.problems, Problem{File: v.file, Line: v.line(path), Field: path, Msg: fmt.Sprintf(format, args...)})
}

// line is the line of path, or of its nearest ancestor that was in the file.
func (v *validator) line(path string) int {
	if v.lines == nil {
		return 0
	}
	for p := path; p != ""; p = parent(p) {
		if l, ok := v.lines[p]; ok {
			return l
		}
	}
	return 1
}

// set reports whether a field was written in the file, or, for a scenario built in code, is non-zero.
func (v *validator) set(path string, nonzero bool) bool {
	_, ok := v.lines[path]
	return ok || nonzero
}

func parent(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
		return ""
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

func (v *validator) run(s *Scenario) {
	v.scenario(s)
	hosts := v.hosts(s.Hosts)
	services := v.services(s.Services, hosts)
	v.workload(&s.Workload, hosts, services)
	v.reload(s.Reload, services)
	cells := v.matrix(s, hosts, services)
	v.long(s.Long, hosts)
	v.expect(s.Expect, cells)
	v.probes(s.Probes, hosts, services)
	v.impair("impair", s.Impair, hosts)
	for i := range s.Matrix {
		v.impair(fmt.Sprintf("matrix[%d].impair", i), s.Matrix[i].Impair, hosts)
	}
}

func (v *validator) scenario(s *Scenario) {
	if s.Name == "" {
		v.add("name", "missing; name the scenario (e.g. reload)")
	} else if !cellName.MatchString(s.Name) {
		v.add("name", "%q must match %s", s.Name, pattern(cellName))
	}
	if s.Backend == "" {
		s.Backend = "netns"
	} else if s.Backend != "netns" && s.Backend != "docker" {
		v.add("backend", "%q is not one of netns, docker", s.Backend)
	}
	if !v.set("seed", s.Seed != 0) {
		s.Seed = 1
	}
	if !v.set("repetitions", s.Repetitions != 0) {
		s.Repetitions = 1
	} else if s.Repetitions < 1 || s.Repetitions > maxRepetitions {
		v.add("repetitions", "%d out of range 1..%d", s.Repetitions, maxRepetitions)
	}
}

// hosts checks the hosts and returns their names.
func (v *validator) hosts(hosts []Host) []string {
	if len(hosts) == 0 {
		v.add("hosts", "at least one host is required")
	}
	var names []string
	for i := range hosts {
		h := &hosts[i]
		p := fmt.Sprintf("hosts[%d]", i)
		switch j := slices.Index(names, h.Name); {
		case h.Name == "":
			v.add(p+".name", "missing; want a name matching %s", pattern(hostName))
		case !hostName.MatchString(h.Name):
			v.add(p+".name", "%q must match %s", h.Name, pattern(hostName))
		case j >= 0:
			v.add(p+".name", "duplicate host %q (also hosts[%d])", h.Name, j)
		}
		names = append(names, h.Name)
		if !v.set(p+".addrs", h.Addrs != 0) {
			h.Addrs = 1
		} else if h.Addrs < 1 || h.Addrs > maxAddrs {
			v.add(p+".addrs", "%d out of range 1..%d", h.Addrs, maxAddrs)
		}
		v.sysctls(p+".sysctls", h.Sysctls)
	}
	return names
}

// services checks the services and returns them by name.
func (v *validator) services(services []Service, hosts []string) map[string]*Service {
	if len(services) == 0 {
		v.add("services", "at least one service is required")
	}
	byName := map[string]*Service{}
	var names []string
	for i := range services {
		sv, p := &services[i], fmt.Sprintf("services[%d]", i)
		switch j := slices.Index(names, sv.Name); {
		case sv.Name == "":
			v.add(p+".name", "missing; want a name matching %s", pattern(serviceName))
		case !serviceName.MatchString(sv.Name):
			v.add(p+".name", "%q must match %s", sv.Name, pattern(serviceName))
		case j >= 0:
			v.add(p+".name", "duplicate service %q (also services[%d])", sv.Name, j)
		default:
			byName[sv.Name] = sv
		}
		names = append(names, sv.Name)
	}
	ports := map[string]string{} // "host:port" -> service
	for i := range services {
		sv, p := &services[i], fmt.Sprintf("services[%d]", i)
		v.service(p, sv, hosts, byName)
		hp := fmt.Sprintf("%s:%d", sv.Host, sv.Port)
		if other, used := ports[hp]; used && sv.Host != "" {
			v.add(p+".port", "port %d on host %s is already used by service %s", sv.Port, sv.Host, other)
		}
		ports[hp] = sv.Name
	}
	return byName
}

func (v *validator) service(p string, sv *Service, hosts []string, byName map[string]*Service) {
	if sv.Kind == "" {
		v.add(p+".kind", "missing; want one of %s", strings.Join(kinds, ", "))
	} else if !slices.Contains(kinds, sv.Kind) {
		v.add(p+".kind", "%q is not one of %s", sv.Kind, strings.Join(kinds, ", "))
	}
	v.hostRef(p+".host", sv.Host, hosts)
	if !v.set(p+".port", sv.Port != 0) {
		sv.Port = defaultHTTPPort
		if sv.Kind == "mariadb" {
			sv.Port = defaultMariaPort
		}
	} else if sv.Port < 1 || sv.Port > 65535 {
		v.add(p+".port", "%d out of range 1..65535", sv.Port)
	}
	for _, key := range sortedKeys(sv.Options) {
		if strings.TrimSpace(key) == "" {
			v.add(p+".options", "empty option name")
		}
	}
	if !sv.IsProxy() {
		for _, f := range []struct {
			name string
			set  bool
		}{{"mode", sv.Mode != ""}, {"backends", len(sv.Backends) > 0}, {"reload", sv.Reload != ""}} {
			if f.set && sv.Kind != "" {
				v.add(p+"."+f.name, "%s applies only to proxies (%s), not %s", f.name, strings.Join(proxyKinds, ", "), sv.Kind)
			}
		}
		return
	}
	v.proxy(p, sv, byName)
}

func (v *validator) proxy(p string, sv *Service, byName map[string]*Service) {
	if sv.Mode == "" {
		sv.Mode = "http"
	} else if sv.Mode != "http" && sv.Mode != "tcp" {
		v.add(p+".mode", "%q is not one of http, tcp", sv.Mode)
	}
	if sv.Reload == "" {
		sv.Reload = "legacy"
	} else if !slices.Contains(strategies, sv.Reload) {
		v.add(p+".reload", "%q is not one of %s", sv.Reload, strings.Join(strategies, ", "))
	}
	if len(sv.Backends) == 0 {
		v.add(p+".backends", "a proxy needs at least one backend service")
	}
	for i, b := range sv.Backends {
		bp := fmt.Sprintf("%s.backends[%d]", p, i)
		target, ok := byName[b]
		switch {
		case !ok:
			v.add(bp, "no service %q (services: %s)", b, listed(sortedKeys(byName)))
		case b == sv.Name:
			v.add(bp, "a proxy cannot be its own backend")
		case slices.Index(sv.Backends, b) < i:
			v.add(bp, "duplicate backend %q", b)
		case target.Kind == "mariadb" && sv.Mode == "http":
			v.add(bp, "backend %q is mariadb: the proxy's mode must be tcp", b)
		}
	}
}

func (v *validator) hostRef(path, name string, hosts []string) {
	if name == "" {
		v.add(path, "missing; want one of the hosts (%s)", listed(hosts))
	} else if !slices.Contains(hosts, name) {
		v.add(path, "no host %q (hosts: %s)", name, listed(hosts))
	}
}

func (v *validator) serviceRef(path, name string, services map[string]*Service) *Service {
	sv, ok := services[name]
	if name == "" {
		v.add(path, "missing; want one of the services (%s)", listed(sortedKeys(services)))
	} else if !ok {
		v.add(path, "no service %q (services: %s)", name, listed(sortedKeys(services)))
	}
	return sv
}

func (v *validator) rate(path string, r float64) {
	if r <= 0 || r > maxRate {
		v.add(path, "%g out of range: want > 0 and <= %d connections/s", r, maxRate)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// listed lists names for a message.
func listed(list []string) string {
	list = slices.DeleteFunc(slices.Clone(list), func(s string) bool { return s == "" })
	if len(list) == 0 {
		return "none defined"
	}
	return strings.Join(list, ", ")
}

// pattern shows a name pattern without its anchors.
func pattern(re *regexp.Regexp) string {
	return strings.TrimSuffix(strings.TrimPrefix(re.String(), "^"), "$")
}
