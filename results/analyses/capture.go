package analyses

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/faultlab/faultlab/capture"
	"github.com/faultlab/faultlab/results"
)

// Capture analyses every packet capture of the cell (probes.capture): packets, RSTs by the role of their
// sender, the per-connection summary (who closed first, zero windows, handshakes), and the RSTs that went
// toward the client against the resets the client saw. The runner enables it whenever a cell captures.
var Capture = &Analyzer{
	Name: "capture",
	Doc:  "per-link packet and connection summary of the cell's pcaps",
	Run:  runCapture,
}

// CaptureResult is the capture analysis of one repetition, by link ("<host>-<iface>").
type CaptureResult struct {
	Links map[string]LinkSummary `json:"links"`
	// ClientResets counts the attempts the client saw refused or reset, to set against RSTs toward it.
	ClientResets int `json:"client_resets"`

	// Pairs tallies how the connections of each (initiator role, responder role) pair closed, by link and
	// then by "<initiator role>><responder role>" (e.g. "proxy>backend": a proxy's connections, its checks
	// among them, toward its servers).
	Pairs map[string]map[string]*PairCloses `json:"pairs"`

	// conns are the proxies' connections toward backends, by the capturing host, for the port budget.
	conns map[string][]serverConn
}

// PairCloses is how the complete connections (SYN captured, a FIN or RST seen) of one role pair closed.
type PairCloses struct {
	Conns int `json:"conns"`
	// First FIN or RST on the wire.
	InitiatorFirst int `json:"initiator_first"`
	ResponderFirst int `json:"responder_first"`
	ResetFirst     int `json:"reset_first"`
	// TIME_WAIT, by the FINs' acknowledgement numbers (capture.Conn.TimeWait): a simultaneous close counts in
	// both TWInitiator and TWResponder, and in Simultaneous.
	TWInitiator  int `json:"tw_initiator"`
	TWResponder  int `json:"tw_responder"`
	Simultaneous int `json:"simultaneous"`
	// First and Last are the starts of the first and last of these connections, after the cell's epoch.
	First time.Duration `json:"first_ns"`
	Last  time.Duration `json:"last_ns"`
	// TWBySecond counts the TIME_WAITs left on the initiator [0] and on the responder [1] by when they began:
	// per second after the epoch (earlier ones in second 0), at the connection's last captured packet (the
	// second FIN, or the ACK of it).
	TWBySecond [2][]int `json:"tw_by_second"`
}

// maxTWSecond bounds TWBySecond: a TIME_WAIT that begins later than this after the epoch (a run of over a
// week, or an epoch never set) is counted in the totals only.
const maxTWSecond = 7 * 24 * 3600

// noteTW counts a TIME_WAIT left on end (0 initiator, 1 responder) beginning at at.
func (p *PairCloses) noteTW(end int, at time.Duration) {
	i := max(int(at/time.Second), 0)
	if i > maxTWSecond {
		return
	}
	for len(p.TWBySecond[end]) <= i {
		p.TWBySecond[end] = append(p.TWBySecond[end], 0)
	}
	p.TWBySecond[end][i]++
}

// TWBetween is how many TIME_WAITs on end began in (from, to], the second at either edge counted in
// proportion to its overlap.
func (p *PairCloses) TWBetween(end int, from, to time.Duration) float64 {
	var n float64
	for i, c := range p.TWBySecond[end] {
		lo, hi := time.Duration(i)*time.Second, time.Duration(i+1)*time.Second
		if over := min(hi, to) - max(lo, from); over > 0 {
			n += float64(c) * float64(over) / float64(time.Second)
		}
	}
	return n
}

// notePair tallies a complete connection under its role pair.
func (c *CaptureResult) notePair(link string, epoch time.Time, cn capture.Conn) {
	if cn.Partial || cn.ClosedFirst == "" {
		return
	}
	byPair := c.Pairs[link]
	if byPair == nil {
		byPair = map[string]*PairCloses{}
		c.Pairs[link] = byPair
	}
	key := string(cn.Initiator.Role) + ">" + string(cn.Responder.Role)
	p := byPair[key]
	start := cn.Start.Sub(epoch)
	if p == nil {
		p = &PairCloses{First: start, Last: start}
		byPair[key] = p
	}
	p.Conns++
	p.First, p.Last = min(p.First, start), max(p.Last, start)
	switch {
	case cn.CloseKind == "rst":
		p.ResetFirst++
	case cn.ClosedFirst == "initiator":
		p.InitiatorFirst++
	default:
		p.ResponderFirst++
	}
	end := cn.End.Sub(epoch)
	switch cn.TimeWait {
	case "initiator":
		p.TWInitiator++
		p.noteTW(0, end)
	case "responder":
		p.TWResponder++
		p.noteTW(1, end)
	case "both":
		p.TWInitiator++
		p.TWResponder++
		p.Simultaneous++
		p.noteTW(0, end)
		p.noteTW(1, end)
	}
}

// LinkSummary is what one link's pcap showed.
type LinkSummary struct {
	Packets   uint64                  `json:"packets"`
	Malformed uint64                  `json:"dropped_or_malformed"`
	Totals    capture.Counts          `json:"totals"`
	ToClient  capture.Counts          `json:"to_client"` // packets whose destination is the client
	RSTBy     map[capture.Role]uint64 `json:"rst_by"`
	Conns     capture.ConnSummary     `json:"conns"`
}

// serverConn is what the port budget and the zero-window analysis need of one connection a proxy opened
// toward a backend.
type serverConn struct {
	start time.Duration // after the cell's epoch
	// held: the proxy's FIN came first (the port stays in TIME_WAIT) or nobody closed (the port is in use).
	held bool
	// dur runs from the SYN to the connection's last packet.
	dur time.Duration
	// zeroWindows counts the proxy's zero-window advertisements toward the backend (Wireshark's
	// tcp.analysis.zero_window), zeroWindowTime the time they lasted.
	zeroWindows    int
	zeroWindowTime time.Duration
	// zeroWindowAfter is how much of the response the proxy had acknowledged at its first zero window.
	zeroWindowAfter uint64
	// respBytes is the backend's payload (the response, headers included).
	respBytes uint64
}

func runCapture(in *Input) (Output, error) {
	p := in.Cell.Scenario.Probes
	if p == nil || len(p.Capture) == 0 {
		return Output{}, nil
	}
	resets := 0
	err := results.ReadRecords(filepath.Join(in.Dir, "records.jsonl"), func(r *results.Record) error {
		if r.Outcome == results.OutcomeReset || r.Outcome == results.OutcomeRefused {
			resets++
		}
		return nil
	})
	if err != nil {
		return Output{}, err
	}
	res := &CaptureResult{Links: map[string]LinkSummary{}, ClientResets: resets, conns: map[string][]serverConn{},
		Pairs: map[string]map[string]*PairCloses{}}
	roles := Roles(in)
	var summary string
	for _, l := range p.Capture {
		name := l.Host + "-" + l.Iface
		host := l.Host
		r, err := capture.AnalyseFile(filepath.Join(in.Dir, name+".pcap"), capture.Options{Roles: roles,
			Origin: in.Epoch, OnConn: func(cn capture.Conn) {
				res.noteServerConn(host, in.Epoch, cn)
				res.notePair(name, in.Epoch, cn)
			}})
		if err != nil {
			return Output{}, fmt.Errorf("capture %s: %w", name, err)
		}
		toClient := func(d capture.Direction) bool { return d.DstRole == capture.RoleClient }
		s := LinkSummary{Packets: r.TCP, Malformed: r.Malformed, Totals: r.Total(nil), ToClient: r.Total(toClient),
			RSTBy: r.RSTBy, Conns: r.Conns}
		res.Links[name] = s
		if summary != "" {
			summary += "; "
		}
		summary += fmt.Sprintf("%s: %d packets; %d RSTs toward the client (client saw %d resets/refusals); "+
			"RSTs sent by proxy %d, client %d, backend %d; SYN retransmissions %d; zero-window advertisements %d",
			name, s.Packets, s.ToClient.RST, resets, s.RSTBy[capture.RoleProxy], s.RSTBy[capture.RoleClient],
			s.RSTBy[capture.RoleBackend], s.Totals.SYNRetrans, s.Totals.ZeroWindow)
	}
	return Output{Value: res, Summary: summary}, nil
}

// noteServerConn keeps each connection a proxy opened toward a backend.
func (c *CaptureResult) noteServerConn(host string, epoch time.Time, cn capture.Conn) {
	if cn.Initiator.Role != capture.RoleProxy || cn.Responder.Role != capture.RoleBackend || cn.Partial {
		return
	}
	held := cn.ClosedFirst == "" || (cn.ClosedFirst == "initiator" && cn.CloseKind == "fin")
	c.conns[host] = append(c.conns[host], serverConn{start: cn.Start.Sub(epoch), held: held,
		dur: cn.End.Sub(cn.Start), zeroWindows: cn.Initiator.ZeroWindowAdverts,
		zeroWindowTime: cn.Initiator.ZeroWindowTime, zeroWindowAfter: cn.Initiator.ZeroWindowAfter,
		respBytes: cn.Responder.PayloadBytes})
}

// Roles maps every lab address to the role of its host: the workload's host is the client, hosts running a
// proxy are proxies, hosts running other services are backends.
func Roles(in *Input) map[netip.Addr]capture.Role {
	s := &in.Cell.Scenario
	role := map[string]capture.Role{s.Workload.From: capture.RoleClient}
	for _, sv := range s.Services {
		if sv.IsProxy() {
			role[sv.Host] = capture.RoleProxy
		} else if role[sv.Host] == "" {
			role[sv.Host] = capture.RoleBackend
		}
	}
	out := map[netip.Addr]capture.Role{}
	for name, addrs := range in.Addrs {
		if r, ok := role[name]; ok {
			for _, a := range addrs {
				out[a] = r
			}
		}
	}
	return out
}
