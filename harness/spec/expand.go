package spec

import (
	"cmp"
	"encoding/binary"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"time"
)

// MigrateReqSysctl is the sysctl the tcp_migrate_req mitigation sets to 1 on the reloaded proxy's host.
const MigrateReqSysctl = "net.ipv4.tcp_migrate_req"

// Expand turns a checked scenario (Parse or Validate, then Check, whose defaults it relies on) into its
// cells: one per matrix row (or one named "default" when there is no matrix), each repeated Repetitions
// times, in matrix order with repetitions inner. Rep counts from 0. With Rounds > 1 the cells are
// interleaved instead: each gets Rounds blocks of duration/Rounds, Rep is the round, and within a round the
// rows run in an order drawn from the seed and the round (RoundOrder).
//
// In long mode the Long overrides apply first (duration, rate, repetitions), then the row's own: its
// replacements (ServiceReplace), its sysctls merged over its hosts', its service options merged over the
// services', its rate, its reload strategy set on the reloaded service ("none" sets Reload to nil), and last
// its mitigations (tcp_migrate_req sets net.ipv4.tcp_migrate_req=1 on the reloaded proxy's host). Every cell
// holds its own deep copy (Reference and Analyses included), and a seed hashed (FNV-1a) from the scenario
// seed, the cell name and the repetition.
func Expand(s *Scenario, long bool) []Cell {
	base, rows := expandBase(s, long)
	if base.Rounds > 1 {
		return interleave(s.Seed, &base, rows, base.Rounds)
	}
	cells := make([]Cell, 0, len(rows)*base.Repetitions)
	for _, row := range rows {
		for rep := range base.Repetitions {
			sc := clone(&base)
			apply(&sc, &row)
			cells = append(cells, Cell{
				Name:        row.Name,
				Rep:         rep,
				Scenario:    sc,
				Mitigations: slices.Clone(row.Mitigations),
				Seed:        cellSeed(s.Seed, row.Name, rep),
				Axes:        maps.Clone(row.Axes),
			})
		}
	}
	return cells
}

// ExpandRounds expands the scenario for a run that adds rounds until its claims are decided: the cells of up
// to maxRounds interleaved rounds, each row one block per round, the block Expand would give (the duration cut
// into the scenario's Rounds), the rows of each round in RoundOrder. The runner stops at the round boundary
// where every claim is decided. Repetitions are ignored: the rounds repeat every cell.
func ExpandRounds(s *Scenario, long bool, maxRounds int) []Cell {
	base, rows := expandBase(s, long)
	base.Repetitions = 1
	return interleave(s.Seed, &base, rows, max(maxRounds, 1))
}

// expandBase applies the mode's overrides to a copy of the scenario and returns it with the matrix rows.
func expandBase(s *Scenario, long bool) (Scenario, []CellSpec) {
	base := clone(s)
	reps := s.Repetitions
	if long && s.Long != nil {
		if s.Long.Duration > 0 {
			base.Workload.Duration = s.Long.Duration
		}
		if s.Long.Rate > 0 {
			base.Workload.Rate = s.Long.Rate
		}
		if s.Long.Repetitions > 0 {
			reps = s.Long.Repetitions
		}
		if s.Long.Rounds > 0 {
			base.Rounds = s.Long.Rounds
		}
		for _, name := range sortedKeys(s.Long.Sysctls) {
			if h := hostNamed(&base, name); h != nil {
				h.Sysctls = merged(h.Sysctls, s.Long.Sysctls[name])
			}
		}
	}
	base.Repetitions = max(reps, 1)
	base.Rounds = max(base.Rounds, 1)
	rows := s.Matrix
	if len(rows) == 0 {
		rows = []CellSpec{{Name: "default"}}
	}
	return base, rows
}

// interleave gives every row one block of duration/base.Rounds in each of rounds rounds, the rows of each
// round in the order RoundOrder draws.
func interleave(seed int64, base *Scenario, rows []CellSpec, rounds int) []Cell {
	base.Workload.Duration /= time.Duration(base.Rounds)
	cells := make([]Cell, 0, len(rows)*rounds)
	for round := range rounds {
		for _, i := range RoundOrder(seed, round, len(rows)) {
			row := rows[i]
			sc := clone(base)
			apply(&sc, &row)
			cells = append(cells, Cell{Name: row.Name, Rep: round, Scenario: sc,
				Mitigations: slices.Clone(row.Mitigations), Seed: cellSeed(seed, row.Name, round),
				Axes: maps.Clone(row.Axes)})
		}
	}
	return cells
}

// RoundOrder is the order in which n rows run in a round: a permutation drawn from the scenario seed and the
// round (a seeded Fisher-Yates shuffle), so a run is reproducible and every round has its own order.
func RoundOrder(seed int64, round, n int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(round)+0x9e3779b97f4a7c15))
	rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}

// apply applies one matrix row to sc, a private copy.
func apply(sc *Scenario, row *CellSpec) {
	for _, name := range sortedKeys(row.Replace) {
		if sv := serviceNamed(sc, name); sv != nil {
			*sv = row.Replace[name].apply(*sv)
		}
	}
	for _, name := range sortedKeys(row.Sysctls) {
		if h := hostNamed(sc, name); h != nil {
			h.Sysctls = merged(h.Sysctls, row.Sysctls[name])
		}
	}
	for _, name := range sortedKeys(row.Services) {
		if sv := serviceNamed(sc, name); sv != nil {
			sv.Options = merged(sv.Options, row.Services[name])
		}
	}
	if row.Rate > 0 {
		sc.Workload.Rate = row.Rate
	}
	if row.Persistent > 0 {
		sc.Workload.Persistent = row.Persistent
	}
	if len(row.WorkloadOptions) > 0 {
		sc.Workload.Options = merged(sc.Workload.Options, row.WorkloadOptions)
	}
	if row.Impair != nil {
		sc.Impair = row.Impair // shared read-only, like Probes
	}
	if sc.Reload == nil {
		return
	}
	reloaded := serviceNamed(sc, sc.Reload.Service)
	if reloaded != nil && row.Reload != "" && row.Reload != "none" {
		reloaded.Reload = row.Reload
	}
	if reloaded != nil && slices.Contains(row.Mitigations, "tcp_migrate_req") {
		if h := hostNamed(sc, reloaded.Host); h != nil {
			h.Sysctls = merged(h.Sysctls, map[string]string{MigrateReqSysctl: "1"})
		}
	}
	if row.ReloadInterval > 0 {
		sc.Reload.Interval, sc.Reload.Jitter = row.ReloadInterval, row.ReloadJitter
	}
	if row.Reload == "none" {
		sc.Reload = nil
	}
}

// apply returns sv as r replaces it (the rules are ServiceReplace's).
func (r ServiceReplace) apply(sv Service) Service {
	out := Service{Name: sv.Name, Kind: r.Kind, Host: cmp.Or(r.Host, sv.Host), Port: cmp.Or(r.Port, sv.Port),
		Proxy: r.Proxy, Options: maps.Clone(r.Options), Reload: r.Reload}
	if r.Proxy {
		out.Mode = cmp.Or(r.Mode, sv.Mode)
		out.Backends = slices.Clone(sv.Backends)
		if r.Backends != nil {
			out.Backends = slices.Clone(r.Backends)
		}
	}
	if r.Kind == sv.Kind {
		out.Options = merged(maps.Clone(sv.Options), r.Options)
		out.Reload = cmp.Or(r.Reload, sv.Reload)
	}
	return out
}

func merged(dst, src map[string]string) map[string]string {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = make(map[string]string, len(src))
	}
	maps.Copy(dst, src)
	return dst
}

func hostNamed(s *Scenario, name string) *Host {
	for i := range s.Hosts {
		if s.Hosts[i].Name == name {
			return &s.Hosts[i]
		}
	}
	return nil
}

func serviceNamed(s *Scenario, name string) *Service {
	for i := range s.Services {
		if s.Services[i].Name == name {
			return &s.Services[i]
		}
	}
	return nil
}

// cellSeed is a stable, non-negative seed for one repetition of one cell.
func cellSeed(seed int64, name string, rep int) int64 {
	h := fnv.New64a()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(seed))
	h.Write(b[:])
	h.Write([]byte(name))
	h.Write([]byte{0})
	binary.BigEndian.PutUint64(b[:], uint64(rep))
	h.Write(b[:])
	return int64(h.Sum64() >> 1)
}

// clone deep-copies a scenario.
func clone(s *Scenario) Scenario {
	c := *s
	c.Hosts = slices.Clone(s.Hosts)
	for i := range c.Hosts {
		c.Hosts[i].Sysctls = maps.Clone(s.Hosts[i].Sysctls)
	}
	c.Services = slices.Clone(s.Services)
	for i := range c.Services {
		c.Services[i].Backends = slices.Clone(s.Services[i].Backends)
		c.Services[i].Options = maps.Clone(s.Services[i].Options)
	}
	c.Workload.Options = maps.Clone(s.Workload.Options)
	if s.Reload != nil {
		r := *s.Reload
		c.Reload = &r
	}
	c.Matrix = slices.Clone(s.Matrix)
	for i, row := range c.Matrix {
		c.Matrix[i].Mitigations = slices.Clone(row.Mitigations)
		c.Matrix[i].Sysctls = cloneNested(row.Sysctls)
		c.Matrix[i].Services = cloneNested(row.Services)
		c.Matrix[i].WorkloadOptions = maps.Clone(row.WorkloadOptions)
		c.Matrix[i].Replace = cloneReplace(row.Replace)
		c.Matrix[i].Axes = maps.Clone(row.Axes)
	}
	c.Axes = cloneAxes(s.Axes)
	c.Exclude = slices.Clone(s.Exclude)
	if s.Long != nil {
		l := *s.Long
		l.Sysctls = cloneNested(s.Long.Sysctls)
		c.Long = &l
	}
	c.Expect = slices.Clone(s.Expect)
	c.Analyses = slices.Clone(s.Analyses)
	return c
}

func cloneReplace(m map[string]ServiceReplace) map[string]ServiceReplace {
	if m == nil {
		return nil
	}
	out := make(map[string]ServiceReplace, len(m))
	for k, r := range m {
		r.Backends = slices.Clone(r.Backends)
		r.Options = maps.Clone(r.Options)
		out[k] = r
	}
	return out
}

func cloneNested(m map[string]map[string]string) map[string]map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]map[string]string, len(m))
	for k, v := range m {
		out[k] = maps.Clone(v)
	}
	return out
}
