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

// The scenario language's own names and patterns. The kinds of services and workloads, reload strategies,
// mitigations and analyses belong to the lab's registries: Check takes them as a Vocabulary.
var (
	claims = "failures, resets, better_than, fewer_resets_than, connect_p99_at_least"

	hostName    = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)
	serviceName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	cellName    = regexp.MustCompile(`^[a-z0-9][a-z0-9_.+-]*$`)
)

// Limits.
const (
	maxRate        = 100000
	maxRepetitions = 1000
	maxAddrs       = 16
	// maxRecords bounds the attempts a run records (rate x duration x cells x repetitions), at about
	// recordBytes each on disk.
	maxRecords  = 50_000_000
	recordBytes = 250
)

// Defaults.
const (
	defaultTimeout = 5 * time.Second
	defaultBefore  = 20 * time.Millisecond
	defaultAfter   = 100 * time.Millisecond
	defaultAlpha   = 0.01
)

// IsProxy reports whether the service is a proxy: one with a mode, backends and a reload strategy. Check
// sets it from the vocabulary; before Check it is false.
func (s Service) IsProxy() bool { return s.Proxy }

// Validate fills in the defaults that do not depend on kinds and checks the structure of a scenario built
// in code, with the same rules Parse applies. A zero value counts as absent. Problems carry s.File but no
// line. Call Check next, as after Parse.
func Validate(s *Scenario) error {
	v := &validator{file: s.File}
	v.expandAxes(s)
	v.run(s)
	if len(v.problems) == 0 {
		v.crossKernels(s)
	}
	if len(v.problems) > 0 {
		return &Error{Problems: s.located(v.problems)}
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
	v.kernelList(s)
	hosts := v.hosts(s.Hosts)
	services := v.services(s.Services, hosts)
	v.workload(&s.Workload, hosts, services)
	v.reload(s.Reload, services)
	cells := v.matrix(s, hosts, services)
	v.reloadFaults(s)
	v.long(s.Long, hosts)
	v.reference(s.Reference, cells)
	v.expect(s.Expect, cells)
	v.analyses(s.Analyses)
	v.budget(s)
	v.probes(s.Probes, hosts, services)
	end := runEnds(s)
	v.impair("impair", s.Impair, hosts, end)
	for i := range s.Matrix {
		v.impair(fmt.Sprintf("matrix[%d].impair", i), s.Matrix[i].Impair, hosts, end)
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
	if !v.set("rounds", s.Rounds != 0) {
		s.Rounds = 1
	} else {
		v.rounds("rounds", s.Rounds, s.Repetitions, s.Workload.Duration)
	}
}

// MaxRounds bounds the interleaved rounds of a run.
const MaxRounds = 100

// minBlock is the shortest block a round may give a cell: each block builds its lab and starts its
// services anew, which takes about a second.
const minBlock = 2 * time.Second

// rounds checks a rounds setting against the repetitions and the duration it cuts into blocks.
func (v *validator) rounds(path string, rounds, reps int, dur time.Duration) {
	switch {
	case rounds < 1 || rounds > MaxRounds:
		v.add(path, "%d out of range 1..%d", rounds, MaxRounds)
	case rounds > 1 && reps > 1:
		v.add(path, "rounds (%d) and repetitions (%d) cannot both be above 1: rounds already repeat every cell, "+
			"interleaved", rounds, reps)
	case rounds > 1 && dur > 0 && dur/time.Duration(rounds) < minBlock:
		v.add(path, "%d rounds cut the duration %s into blocks of %s, under the %s a block needs (each block "+
			"starts its lab anew)", rounds, dur, dur/time.Duration(rounds), minBlock)
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
		case reserved(h.Name) != "":
			v.add(p+".name", "%q is reserved: %s", h.Name, reserved(h.Name))
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

// reserved says why a host cannot have this name, or "". Every host's link to the router is named after
// the host in the router's namespace (harness/netns), so a host cannot take the name of the router or of
// another device there: lo, and the impairment engine's flifb<N> and flprobe* (harness/impair).
func reserved(name string) string {
	switch {
	case name == RouterHost:
		return "it names the lab's router (and, in probes, the router's namespace)"
	case name == "lo":
		return "the router's link to a host is named after the host, and lo is the router's loopback device"
	case strings.HasPrefix(name, "flifb"), strings.HasPrefix(name, "flprobe"):
		return "the router's link to a host is named after the host, and the impairment engine names its " +
			"own devices on the router flifb<N> and flprobe*"
	}
	return ""
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
	for i := range services {
		v.service(fmt.Sprintf("services[%d]", i), &services[i], hosts, byName)
	}
	return byName
}

// service checks what every service has; Check checks its kind and what depends on it (port default,
// proxy fields, option keys, protocols).
func (v *validator) service(p string, sv *Service, hosts []string, byName map[string]*Service) {
	v.hostRef(p+".host", sv.Host, hosts)
	if v.set(p+".port", sv.Port != 0) && (sv.Port < 1 || sv.Port > 65535) {
		v.add(p+".port", "%d out of range 1..65535", sv.Port)
	}
	for _, key := range sortedKeys(sv.Options) {
		if strings.TrimSpace(key) == "" {
			v.add(p+".options", "empty option name")
		}
	}
	v.backendRefs(p, sv.Name, sv.Backends, byName)
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

// Line is the line of path, or of its nearest ancestor that was in the file; 0 for a scenario built in code.
func (s *Scenario) Line(path string) int {
	v := &validator{lines: s.lines}
	return v.line(path)
}
