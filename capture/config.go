// Package capture shows on the wire and in the kernel why things happened in a lab cell: packet captures of
// lab links written as pcap files (gopacket afpacket, TPACKET_V3), a streaming analyser of those captures
// (SYNs and their retransmissions, RSTs and who sent them, zero windows, who closed first), a socket-state
// sampler per host (inet_diag dump plus /proc/net/sockstat) and a process-age sampler, all written as files
// a run directory keeps. Every probe opens its sockets on a thread inside a lab namespace and refuses the
// root namespace.
//
// Packet filters are compiled with libpcap (cgo); a build without cgo captures without filters only.
package capture

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Probe is something the runner switches on for a cell and off at its end. Start returns once the probe
// is collecting; the probe stops when ctx ends or Stop is called, and Stop (idempotent) finalises its files.
type Probe interface {
	Start(ctx context.Context) error
	Stop() error
}

// Config lists the probes of a cell. It is plain data: a scenario file decodes into it.
type Config struct {
	Links  []LinkCapture  `yaml:"links" json:"links"`
	States []StateSampler `yaml:"states" json:"states"`
	Procs  []ProcSampler  `yaml:"procs" json:"procs"`
}

// LinkCapture captures one link into <host>-<iface>.pcap.
type LinkCapture struct {
	// Host is the host (or "router") whose namespace holds the interface.
	Host string `yaml:"host" json:"host"`
	// Iface is the interface inside that namespace: eth0 on a host, the host's name on the router.
	Iface string `yaml:"iface" json:"iface"`
	// Snaplen is how many bytes of each packet are kept (default 262144, as tcpdump; 128 keeps headers).
	Snaplen int `yaml:"snaplen" json:"snaplen,omitempty"`
	// Filter is an optional pcap-filter(7) expression, e.g. "tcp port 80".
	Filter string `yaml:"filter" json:"filter,omitempty"`
	// Engine is "afpacket" (TPACKET_V3 ring) or "pcapgo" (pure Go); empty means afpacket, falling back to
	// pcapgo when the ring cannot be set up (the stats file says so).
	Engine string `yaml:"engine" json:"engine,omitempty"`
	// RingBytes is the size of the afpacket ring (default 64 MiB).
	RingBytes int `yaml:"ring_bytes" json:"ring_bytes,omitempty"`
}

// StateSampler samples a host's TCP socket states into states-<host>.jsonl.
type StateSampler struct {
	Host string `yaml:"host" json:"host"`
	// Interval between samples (default 1 s).
	Interval time.Duration `yaml:"interval" json:"interval,omitempty"`
	// States limits the dump to these states (kernel names as in StateNames, e.g. TIME_WAIT); empty means all.
	States []string `yaml:"states" json:"states,omitempty"`
	// PortRanges are the local-port ranges counted separately; empty means the host's
	// net.ipv4.ip_local_port_range, read when the sampler starts.
	PortRanges []PortRange `yaml:"port_ranges" json:"port_ranges,omitempty"`
	// Origin is time zero of the series (the cell's start); zero means the sampler's start.
	Origin time.Time `yaml:"-" json:"-"`
}

// PortRange is an inclusive range of local ports.
type PortRange struct {
	Name string `yaml:"name" json:"name,omitempty"`
	Lo   int    `yaml:"lo" json:"lo"`
	Hi   int    `yaml:"hi" json:"hi"`
}

// ProcSampler samples the ages of a service's processes into procs-<service>.jsonl.
type ProcSampler struct {
	Service string `yaml:"service" json:"service"`
	// Interval between samples (default 1 s).
	Interval time.Duration `yaml:"interval" json:"interval,omitempty"`
	// Origin is time zero of the series (the cell's start); zero means the sampler's start.
	Origin time.Time `yaml:"-" json:"-"`
}

const (
	defaultSnaplen   = 262144
	defaultRingBytes = 64 << 20
	defaultInterval  = time.Second
)

var ifaceRE = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,15}$`)

func (l LinkCapture) withDefaults() LinkCapture {
	if l.Snaplen == 0 {
		l.Snaplen = defaultSnaplen
	}
	if l.RingBytes == 0 {
		l.RingBytes = defaultRingBytes
	}
	return l
}

func (l LinkCapture) validate() error {
	var errs []error
	if !ifaceRE.MatchString(l.Iface) {
		errs = append(errs, fmt.Errorf("iface %q: want an interface name", l.Iface))
	}
	if l.Snaplen < 0 || l.Snaplen > defaultSnaplen || (l.Snaplen > 0 && l.Snaplen < 64) {
		errs = append(errs, fmt.Errorf("snaplen %d: want 64 to %d (0 for the default)", l.Snaplen, defaultSnaplen))
	}
	switch l.Engine {
	case "", EngineAFPacket, EnginePcapgo:
	default:
		errs = append(errs, fmt.Errorf("engine %q: want %q or %q", l.Engine, EngineAFPacket, EnginePcapgo))
	}
	if l.RingBytes < 0 || (l.RingBytes > 0 && l.RingBytes < 2*blockSize) || l.RingBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("ring_bytes %d: want 2 MiB to 1 GiB", l.RingBytes))
	}
	return errors.Join(errs...)
}

func (s StateSampler) validate() error {
	var errs []error
	if s.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval %s: must be positive", s.Interval))
	}
	if _, err := stateMask(s.States); err != nil {
		errs = append(errs, err)
	}
	for i, r := range s.PortRanges {
		if r.Lo < 0 || r.Hi > 65535 || r.Lo > r.Hi {
			errs = append(errs, fmt.Errorf("port_ranges[%d] %d-%d: want 0 <= lo <= hi <= 65535", i, r.Lo, r.Hi))
		}
	}
	return errors.Join(errs...)
}

func (p ProcSampler) validate() error {
	var errs []error
	if p.Service == "" {
		errs = append(errs, errors.New("service: required"))
	}
	if p.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval %s: must be positive", p.Interval))
	}
	return errors.Join(errs...)
}

// Validate checks the whole configuration and returns every problem, each prefixed with its field path.
func (c Config) Validate() error {
	var errs []error
	prefix := func(path string, err error) {
		if err == nil {
			return
		}
		// Prefix every joined problem, not only the first line.
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				errs = append(errs, fmt.Errorf("%s: %w", path, e))
			}
			return
		}
		errs = append(errs, fmt.Errorf("%s: %w", path, err))
	}
	seen := map[string]bool{}
	for i, l := range c.Links {
		path := fmt.Sprintf("links[%d]", i)
		prefix(path, l.validate())
		if l.Host == "" {
			prefix(path, errors.New("host: required"))
		}
		if key := l.Host + "-" + l.Iface; seen[key] {
			prefix(path, fmt.Errorf("%s/%s: captured twice", l.Host, l.Iface))
		} else {
			seen[key] = true
		}
	}
	for i, s := range c.States {
		path := fmt.Sprintf("states[%d]", i)
		prefix(path, s.validate())
		if s.Host == "" {
			prefix(path, errors.New("host: required"))
		}
	}
	for i, p := range c.Procs {
		prefix(fmt.Sprintf("procs[%d]", i), p.validate())
	}
	return errors.Join(errs...)
}
