package capture

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/faultlab/faultlab/harness"
	"golang.org/x/sys/unix"
)

// StateCounts counts TCP sockets by state (as ss reports them: orphaned FIN_WAIT2 minisockets count as
// FIN_WAIT2, request sockets as SYN_RECV).
type StateCounts struct {
	Established int `json:"established"`
	SynSent     int `json:"syn_sent"`
	SynRecv     int `json:"syn_recv"`
	FinWait1    int `json:"fin_wait1"`
	FinWait2    int `json:"fin_wait2"`
	TimeWait    int `json:"time_wait"`
	Close       int `json:"close"`
	CloseWait   int `json:"close_wait"`
	LastAck     int `json:"last_ack"`
	Listen      int `json:"listen"`
	Closing     int `json:"closing"`
}

func (c *StateCounts) field(state uint8) *int {
	switch state {
	case harness.TCPEstablished:
		return &c.Established
	case harness.TCPSynSent:
		return &c.SynSent
	case harness.TCPSynRecv, harness.TCPNewSynRecv:
		return &c.SynRecv
	case harness.TCPFinWait1:
		return &c.FinWait1
	case harness.TCPFinWait2:
		return &c.FinWait2
	case harness.TCPTimeWait:
		return &c.TimeWait
	case harness.TCPClose:
		return &c.Close
	case harness.TCPCloseWait:
		return &c.CloseWait
	case harness.TCPLastAck:
		return &c.LastAck
	case harness.TCPListen:
		return &c.Listen
	case harness.TCPClosing:
		return &c.Closing
	}
	return nil
}

// Get returns the count of a state by its kernel name (StateNames); 0 for unknown names.
func (c StateCounts) Get(name string) int {
	for i, n := range StateNames {
		if n != "" && n == name {
			return *c.field(uint8(i))
		}
	}
	return 0
}

// PortCount is the sockets whose local port is in a range.
type PortCount struct {
	PortRange
	Total  int         `json:"total"`
	States StateCounts `json:"states"`
}

// Sockstat is the TCP line of /proc/net/sockstat. InUse and TimeWait are the namespace's own; Linux keeps
// Orphan, Alloc and Mem (pages) machine-wide, so they include other namespaces' sockets.
type Sockstat struct {
	InUse    int `json:"inuse"`
	Orphan   int `json:"orphan"`
	TimeWait int `json:"tw"`
	Alloc    int `json:"alloc"`
	Mem      int `json:"mem_pages"`
}

// StateSample is one line of a states-<host>.jsonl series.
type StateSample struct {
	Host string `json:"host"`
	// T is nanoseconds since the series' origin; Time is the wall clock.
	T      int64       `json:"t_ns"`
	Time   time.Time   `json:"time"`
	Total  int         `json:"total"`
	States StateCounts `json:"states"`
	// Orphans counts this namespace's sockets no process holds any more: FIN_WAIT1, FIN_WAIT2, CLOSING and
	// LAST_ACK sockets without an inode (time-wait minisockets excluded).
	Orphans  int         `json:"orphans"`
	Ports    []PortCount `json:"ports"`
	Sockstat Sockstat    `json:"sockstat"`
	// Dump is what the inet_diag dump and the sockstat read cost.
	Dump time.Duration `json:"dump_ns"`
	// Interrupted: the kernel flagged the dump as inconsistent (sockets changed during it).
	Interrupted bool   `json:"interrupted,omitempty"`
	Error       string `json:"error,omitempty"`
}

// SocketStates reads one host's socket states: an inet_diag socket and /proc/net/sockstat, both opened
// inside the host's namespace and usable from any goroutine afterwards.
type SocketStates struct {
	host   string
	mask   uint32
	ranges []PortRange
	origin time.Time
	diag   *harness.SockDiag
	stat   *os.File
	buf    []byte
}

// OpenSocketStates opens the sampler's sockets inside h's namespace. Without cfg.PortRanges it reads the
// host's ephemeral port range.
func OpenSocketStates(h harness.NetnsHost, cfg StateSampler) (*SocketStates, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("socket states %s: %w", h.Name(), err)
	}
	mask, _ := stateMask(cfg.States)
	s := &SocketStates{host: h.Name(), mask: mask, ranges: cfg.PortRanges, origin: cfg.Origin,
		buf: make([]byte, 4096)}
	if s.origin.IsZero() {
		s.origin = time.Now()
	}
	if len(s.ranges) == 0 {
		r, err := ephemeralRange(h)
		if err != nil {
			return nil, fmt.Errorf("socket states %s: %w", h.Name(), err)
		}
		s.ranges = []PortRange{r}
	}
	err := inLab(h, "socket states", func() error {
		var err error
		if s.diag, err = harness.OpenSockDiag(); err != nil {
			return err
		}
		// /proc/thread-self/net resolves to this thread's namespace when opened, and the open file stays
		// bound to that namespace.
		s.stat, err = os.Open("/proc/thread-self/net/sockstat")
		return err
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("socket states %s: %w", h.Name(), err)
	}
	return s, nil
}

func ephemeralRange(h harness.NetnsHost) (PortRange, error) {
	const name = "net.ipv4.ip_local_port_range"
	v, err := harness.ReadSysctls(h, []string{name})
	if err != nil {
		return PortRange{}, err
	}
	var r PortRange
	if _, err := fmt.Sscan(v[name], &r.Lo, &r.Hi); err != nil {
		return PortRange{}, fmt.Errorf("parse %s %q: %w", name, v[name], err)
	}
	r.Name = "ephemeral"
	return r, nil
}

// Sample dumps the sockets and reads sockstat once.
func (s *SocketStates) Sample() (StateSample, error) {
	now := time.Now()
	out := StateSample{Host: s.host, T: int64(now.Sub(s.origin)), Time: now, Ports: make([]PortCount, len(s.ranges))}
	for i, r := range s.ranges {
		out.Ports[i].PortRange = r
	}
	intr, err := s.diag.Dump(s.mask, out.add)
	out.Interrupted = intr
	if err == nil {
		out.Sockstat, err = s.readSockstat()
	}
	out.Dump = time.Since(now)
	if err != nil {
		out.Error = err.Error()
		return out, fmt.Errorf("socket states %s: %w", s.host, err)
	}
	return out, nil
}

func (o *StateSample) add(m *harness.DiagSocket) {
	sport := int(m.Local.Port())
	f := o.States.field(m.State)
	if f == nil {
		return
	}
	*f++
	o.Total++
	if m.Inode == 0 && m.Timer != 3 { // timer 3 marks a time-wait minisocket
		switch m.State {
		case harness.TCPFinWait1, harness.TCPFinWait2, harness.TCPClosing, harness.TCPLastAck:
			o.Orphans++
		}
	}
	for i := range o.Ports {
		if p := &o.Ports[i]; sport >= p.Lo && sport <= p.Hi {
			p.Total++
			*p.States.field(m.State)++
		}
	}
}

func (s *SocketStates) readSockstat() (Sockstat, error) {
	n, err := unix.Pread(int(s.stat.Fd()), s.buf, 0)
	if err != nil {
		return Sockstat{}, fmt.Errorf("read sockstat: %w", err)
	}
	return parseSockstat(s.buf[:n])
}

// parseSockstat reads the "TCP:" line of /proc/net/sockstat.
func parseSockstat(b []byte) (Sockstat, error) {
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) == 0 || f[0] != "TCP:" {
			continue
		}
		var st Sockstat
		fields := map[string]*int{"inuse": &st.InUse, "orphan": &st.Orphan, "tw": &st.TimeWait,
			"alloc": &st.Alloc, "mem": &st.Mem}
		for i := 1; i+1 < len(f); i += 2 {
			if p, ok := fields[f[i]]; ok {
				v, err := strconv.Atoi(f[i+1])
				if err != nil {
					return Sockstat{}, fmt.Errorf("sockstat %s %q: %w", f[i], f[i+1], err)
				}
				*p = v
			}
		}
		return st, nil
	}
	return Sockstat{}, errors.New("sockstat: no TCP line")
}

// Close closes the sockets (idempotent).
func (s *SocketStates) Close() error {
	var errs []error
	if s.diag != nil {
		errs = append(errs, s.diag.Close())
	}
	if s.stat != nil {
		errs = append(errs, s.stat.Close())
		s.stat = nil
	}
	return errors.Join(errs...)
}
