// Package spec holds the scenario file's configuration types, their strict decoding (unknown keys, wrong
// types and out-of-range values are errors naming file:line, the field and what is allowed), validation and
// the expansion of the mitigation matrix into cells. It imports nothing of the project and needs no privileges.
package spec

import "time"

// Scenario is a decoded scenario file.
type Scenario struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Backend is "netns" (default) or "docker".
	Backend string `yaml:"backend"`
	Seed    int64  `yaml:"seed"`
	// Repetitions of every cell (default 1), one after another.
	Repetitions int `yaml:"repetitions"`
	// Rounds interleaves the cells (default 1: each cell runs its whole duration at once): the workload's
	// duration is cut into Rounds blocks, and in each round every cell runs one block, in an order drawn from
	// the seed, so the machine's drift over the run falls on every cell alike. A block's records carry the
	// round as their repetition (Rep), and comparisons are stratified by it. Not with repetitions > 1.
	Rounds int `yaml:"rounds"`
	// Hosts in declaration order.
	Hosts    []Host    `yaml:"hosts"`
	Services []Service `yaml:"services"`
	Workload Workload  `yaml:"workload"`
	Reload   *Reload   `yaml:"reload"`
	// Matrix lists the cells; each overrides parts of the base scenario. Empty means one cell named "default".
	// When Axes are given, Parse puts the cells of their product first and the rows written here after them.
	Matrix []CellSpec `yaml:"matrix"`
	// Axes are named dimensions of the matrix (axes.go): their product gives one cell per combination of
	// levels, named by the levels joined with "." (e.g. legacy.rate1000.tcp_tw_reuse-1).
	Axes []Axis `yaml:"axes"`
	// Exclude drops the product's cells that match an entry: every axis it names at the level it gives.
	Exclude []map[string]string `yaml:"exclude"`
	// Kernels runs every cell under each kernel named (kernels.go): host (this machine's) and the lab's
	// guests (e.g. debian-6.1), the cells named <cell>.<kernel level> (default.debian-6-1).
	Kernels []string `yaml:"kernels"`
	// Reference names the cell the other cells are compared with (comparisons, p-values); optional.
	Reference string `yaml:"reference"`
	// Long overrides applied in long (nightly) mode.
	Long *Long `yaml:"long"`
	// Expect lists what the scenario exists to show, checked against the results.
	Expect []Expectation `yaml:"expect"`
	// Analyses names the analyses to run on every cell (the lab's analysis registry lists them; Check
	// checks the names).
	Analyses []string `yaml:"analyses"`
	// Probes switches the lab's probes on: packet captures, socket-state and process samplers.
	Probes *Probes `yaml:"probes"`
	// Impair degrades links: delay, jitter, loss, rate, on a schedule (harness/impair).
	Impair *Impair `yaml:"impair"`

	// File is the path the scenario was loaded from (not decoded).
	File string `yaml:"-"`

	// origins says, for each matrix row the axes generated (nil for a row written in the file), which
	// axis level set which of its fields, so problems name the level (axes.go).
	origins  []*rowOrigin
	axesDone bool // the axes' cells are in Matrix
	// kernelsDone: the cells are crossed with the kernels.
	kernelsDone bool
	// expectFrom maps each claim to the index it had in the file, once AddAxis crossed them (nil: the same).
	expectFrom []int

	// lines maps the field paths Parse read (e.g. "services[1].kind") to their line, so that Check can
	// name lines too. Nil for a scenario built in code.
	lines map[string]int
}

// Host is one lab host.
type Host struct {
	Name string `yaml:"name"` // [a-z][a-z0-9]{0,9}
	// Addrs is how many lab addresses the host gets (default 1, at most 16).
	Addrs   int               `yaml:"addrs"`
	Sysctls map[string]string `yaml:"sysctls"` // full dotted names, e.g. net.ipv4.tcp_tw_reuse
	// Image is the host's container image on the docker backend (default: the lab's image for the role of
	// the host's services, e.g. faultlab/haproxy:bookworm; see `make images`). Ignored on netns.
	Image string `yaml:"image"`
}

// Service is a daemon running on a host.
type Service struct {
	Name string `yaml:"name"`
	// Kind is one of the lab's service kinds (its service registry: haproxy, nginx, mariadb, tengine...).
	Kind string `yaml:"kind"`
	Host string `yaml:"host"`
	Port int    `yaml:"port"` // 1-65535; default: the kind's (Check sets it)
	// Mode is a proxy's mode: "http" (default) or "tcp".
	Mode string `yaml:"mode"`
	// Backends names the services a proxy forwards to.
	Backends []string `yaml:"backends"`
	// Reload is the reload strategy of a proxy, one of its kind's (default: the kind's first).
	Reload string `yaml:"reload"`
	// Options are extra driver settings (e.g. maxconn, timeouts, nbthread, body_size); Check checks the
	// keys against the kind's, and each driver checks the values.
	Options map[string]string `yaml:"options"`

	// Proxy is set by Check from the vocabulary: the kind is a proxy (mode, backends, reload strategy).
	Proxy bool `yaml:"-"`
}

// Workload is the load the client drives.
type Workload struct {
	// Kind is one of the lab's workload kinds (its workload registry: http, mysql...).
	Kind string `yaml:"kind"`
	// From is the client host.
	From string `yaml:"from"`
	// Target is the service the client connects to.
	Target   string        `yaml:"target"`
	Rate     float64       `yaml:"rate"`     // new connections per second, > 0
	Duration time.Duration `yaml:"duration"` // e.g. 20s; units required
	Timeout  time.Duration `yaml:"timeout"`  // per attempt, default 5s
	// Warmup is run before the measured duration and not recorded (default 0).
	Warmup time.Duration `yaml:"warmup"`
	// Persistent > 0 keeps that many connections open and sends the attempts over them (a request per
	// attempt) instead of opening a connection per attempt: the "persistent connections" mitigation. Only
	// for workload kinds that support it.
	Persistent int `yaml:"persistent"`
	// Options are the workload kind's own settings (e.g. the check workload's close: response|eof); the
	// workload checks them before any work starts.
	Options map[string]string `yaml:"options"`
}

// Reload is the reload storm.
type Reload struct {
	Service  string        `yaml:"service"`
	Interval time.Duration `yaml:"interval"` // > 0
	Jitter   time.Duration `yaml:"jitter"`   // uniform in [-jitter, +jitter], < interval
	// SynDrop is the window of the syn-drop mitigation: SYNs to the frontend are dropped from Before the
	// reload starts until After it has completed (defaults 20ms and 100ms).
	SynDrop SynDrop `yaml:"syn_drop"`
	// SynHold is the window of the syn-hold mitigation: SYNs to the frontend are held (queued, not dropped)
	// from up to Before the reload starts (waiting for the accept queues to drain) until the old listener
	// has closed, at most After the reload has completed; then they are released in order (defaults 20ms
	// and 100ms).
	SynHold SynDrop `yaml:"syn_hold"`
}

// SynDrop is the window around each reload in which SYNs to the proxy's frontend port are dropped.
type SynDrop struct {
	Before time.Duration `yaml:"before"`
	After  time.Duration `yaml:"after"`
}

// Probes lists the probes of every cell (capture/). Cells share them read-only.
type Probes struct {
	// Capture records packets of a link into <host>-<iface>.pcap and analyses them after the cell.
	Capture []CaptureSpec `yaml:"capture"`
	// States samples a host's TCP socket states into states-<host>.jsonl.
	States []StatesSpec `yaml:"states"`
	// Procs samples the ages of a service's processes into procs-<service>.jsonl.
	Procs []ProcsSpec `yaml:"procs"`
}

// CaptureSpec is a packet capture on one link.
type CaptureSpec struct {
	Host    string `yaml:"host"`    // a host, or "router"
	Iface   string `yaml:"iface"`   // default eth0 on a host; on the router, the host's name
	Snaplen int    `yaml:"snaplen"` // bytes kept per packet: 0 (default, whole packets) or 64..262144
	Filter  string `yaml:"filter"`  // optional pcap-filter(7) expression
}

// StatesSpec is a socket-state sampler on one host.
type StatesSpec struct {
	Host     string        `yaml:"host"`
	Interval time.Duration `yaml:"interval"` // default 1s
}

// ProcsSpec is a process-age sampler for one service.
type ProcsSpec struct {
	Service  string        `yaml:"service"`
	Interval time.Duration `yaml:"interval"` // default 1s
}

// Impair is the impairment section: which engine, and what each link suffers.
type Impair struct {
	// Engine is auto (default: netem where the kernel has it, else the userspace engine), netem or userspace.
	Engine string       `yaml:"engine"`
	Links  []ImpairLink `yaml:"links"`
}

// ImpairLink impairs the link between a host and the router, per direction.
type ImpairLink struct {
	Host     string     `yaml:"host"`
	ToHost   *ImpairDir `yaml:"to_host"`   // router -> host
	FromHost *ImpairDir `yaml:"from_host"` // host -> router
}

// ImpairDir is one direction: the impairment in force from the start, then the schedule's steps, each of
// which replaces the whole impairment at its time (a step with nothing set clears it).
type ImpairDir struct {
	Impairment `yaml:",inline"`
	Schedule   []ImpairStep `yaml:"schedule"`
}

// ImpairStep is one change of a direction's impairment, at an offset from the cell's start (which comes
// before the workload's warmup); it must fall before the workload's end.
type ImpairStep struct {
	At         time.Duration `yaml:"at"`
	Impairment `yaml:",inline"`
}

// Impairment is what one direction suffers. Units are required: 20ms, 0.01 (a probability), 10mbit.
type Impairment struct {
	Delay        time.Duration `yaml:"delay"`
	Jitter       time.Duration `yaml:"jitter"`
	Distribution string        `yaml:"distribution"` // uniform (default), normal, pareto
	KeepOrder    bool          `yaml:"keep_order"`
	Loss         float64       `yaml:"loss"` // independent loss probability in [0,1]
	LossBurst    *LossBurst    `yaml:"loss_burst"`
	Rate         string        `yaml:"rate"` // e.g. 10mbit, 512kbit, 1gbit
}

// LossBurst is the Gilbert-Elliott burst-loss model (netem's "loss gemodel p r 1-h 1-k").
type LossBurst struct {
	P         float64 `yaml:"p"`
	R         float64 `yaml:"r"`
	OneMinusH float64 `yaml:"one_minus_h"`
	OneMinusK float64 `yaml:"one_minus_k"`
}

// CellSpec is one row of the mitigation matrix.
type CellSpec struct {
	Name string `yaml:"name"` // [a-z0-9][a-z0-9_.+-]*, unique; used as a subtest name
	// Reload overrides the reloaded service's strategy; "none" disables the reload storm.
	Reload string `yaml:"reload"`
	// Mitigations, each one of the lab's (e.g. syn-drop, tcp_migrate_req).
	Mitigations []string `yaml:"mitigations"`
	// ReloadInterval and ReloadJitter override the reload storm's interval and jitter in this cell when
	// ReloadInterval > 0 (a reload-rate sweep); the jitter is then ReloadJitter (0 when unset).
	ReloadInterval time.Duration `yaml:"reload_interval"`
	ReloadJitter   time.Duration `yaml:"reload_jitter"`
	// Sysctls per host name, merged over the host's own.
	Sysctls map[string]map[string]string `yaml:"sysctls"`
	// Services overrides service options per service name.
	Services map[string]map[string]string `yaml:"services"`
	// Rate overrides the workload rate when > 0.
	Rate float64 `yaml:"rate"`
	// Impair replaces the scenario's impairments in this cell.
	Impair *Impair `yaml:"impair"`
	// Persistent overrides the workload's persistent connection count when > 0.
	Persistent int `yaml:"persistent"`
	// WorkloadOptions are merged over the workload's options in this cell.
	WorkloadOptions map[string]string `yaml:"workload_options"`
	// Replace swaps services for another kind in this cell, by service name (see ServiceReplace). The
	// row's services options and reload strategy then apply to the replacement.
	Replace map[string]ServiceReplace `yaml:"replace"`

	// Axes is the level of each axis for a row the axes generated (axis name -> level name); nil otherwise.
	Axes map[string]string `yaml:"-"`
}

// ServiceReplace is what a matrix row puts in place of a service in its cell. Kind is required. Host and
// Port are the original's unless given; Mode and Backends too when the new kind is a proxy (a service of
// another kind has none). Options and Reload are the original's only when the kind stays the same (merged
// under the given ones); for a new kind they are kind-specific, so only the given ones apply and the kind's
// default strategy unless Reload is given. Everything that names the service (the workload's target, the
// reload storm, probes, other proxies' backends) names the replacement in that cell. Check checks it
// against the new kind and fills in Proxy and the defaults.
type ServiceReplace struct {
	Kind     string            `yaml:"kind"`
	Host     string            `yaml:"host"`
	Port     int               `yaml:"port"`
	Mode     string            `yaml:"mode"`
	Backends []string          `yaml:"backends"`
	Reload   string            `yaml:"reload"`
	Options  map[string]string `yaml:"options"`

	// Proxy is set by Check from the vocabulary: the new kind is a proxy.
	Proxy bool `yaml:"-"`
}

// Long holds the long-mode (nightly) overrides.
type Long struct {
	Duration    time.Duration `yaml:"duration"`
	Rate        float64       `yaml:"rate"`
	Repetitions int           `yaml:"repetitions"`
	Rounds      int           `yaml:"rounds"`
	// Sysctls per host name, merged over the hosts' own in long mode (before the matrix rows' own).
	Sysctls map[string]map[string]string `yaml:"sysctls"`
}

// Expectation is one claim the scenario's results must hold. Exactly one of the claim fields is set.
type Expectation struct {
	Cell string `yaml:"cell"`
	// Failures is "some" (at least one failed attempt: the pathology is reproduced) or "none".
	Failures string `yaml:"failures"`
	// Resets is "none" (no attempt refused or reset: the reload pathology's signature is absent, whatever
	// timeouts a busy machine causes) or "some".
	Resets string `yaml:"resets"`
	// BetterThan names a cell this one must beat significantly (fewer reload windows with failures,
	// one-sided exact test at Alpha).
	BetterThan string `yaml:"better_than"`
	// FewerResetsThan names a cell this one must have fewer resets (refused+reset) than.
	FewerResetsThan string `yaml:"fewer_resets_than"`
	// ConnectP99AtLeast requires the cell's p99 connect time to be at least this (e.g. the SYN retransmit time).
	ConnectP99AtLeast time.Duration `yaml:"connect_p99_at_least"`
	// Alpha is the significance level for BetterThan (default 0.01).
	Alpha float64 `yaml:"alpha"`
	// MinReloads voids a claim about a storm cell that completed fewer reloads (0: at least one).
	MinReloads int `yaml:"min_reloads"`
	// AcceptInconclusive lets the claim end inconclusive without failing the run (by default an undecided
	// claim fails `go test` and gives `faultlab run` exit status 3).
	AcceptInconclusive bool `yaml:"accept_inconclusive"`
}

// Cell is one expanded cell: the base scenario with one matrix row applied. Expand produces them.
type Cell struct {
	Name string
	Rep  int // repetition, counting from 0
	// Scenario is a deep copy with the row's overrides applied (hosts' sysctls merged, services' options
	// merged, strategy set, rate set); Reload is nil when the row disables the storm. It keeps the
	// scenario's Reference and Analyses.
	Scenario    Scenario
	Mitigations []string
	Seed        int64 // derived from the scenario seed, the cell name and the repetition
	// Axes is the cell's level on each axis (axis name -> level name); nil for a cell not from axes.
	Axes map[string]string
}
