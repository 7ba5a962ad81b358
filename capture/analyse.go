package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Role is what an address is in the lab: client, proxy or backend (any name the caller gives).
type Role string

// Roles the lab uses; RoleUnknown labels addresses missing from Options.Roles.
const (
	RoleClient  Role = "client"
	RoleProxy   Role = "proxy"
	RoleBackend Role = "backend"
	RoleUnknown Role = "unknown"
)

// Options tune Analyse. The zero value works: one-second windows from the first packet, no roles.
type Options struct {
	// Roles maps lab addresses to roles, so RSTs, zero windows and closes say who did them.
	Roles map[netip.Addr]Role
	// Window is the width of the time windows counts are split into (default 1 s).
	Window time.Duration
	// Origin is where window 0 starts (e.g. the cell's start, so windows line up with the records);
	// default: the first packet's timestamp. Packets before Origin count in window 0.
	Origin time.Time
	// KeepConns puts every connection into Result.ConnList (memory grows with the connection count).
	KeepConns bool
	// OnConn, if set, receives each connection when the analyser is done with it (streaming).
	OnConn func(Conn)
	// ConnIdle is how long (capture time) a connection may stay silent before it is finished (default 2 min).
	// A closed connection is finished after ClosedLinger (default 10 s) of silence.
	ConnIdle     time.Duration
	ClosedLinger time.Duration
}

// Counts are packet counts of one direction (and time window).
type Counts struct {
	Packets      uint64 `json:"packets"`
	PayloadBytes uint64 `json:"payload_bytes"`
	// SYN counts every SYN without ACK, retransmissions included; SYNRetrans is the retransmitted part.
	SYN        uint64 `json:"syn"`
	SYNRetrans uint64 `json:"syn_retrans"`
	// SYNACK counts every SYN+ACK, retransmissions included.
	SYNACK        uint64 `json:"synack"`
	SYNACKRetrans uint64 `json:"synack_retrans"`
	RST           uint64 `json:"rst"`
	FIN           uint64 `json:"fin"`
	// ZeroWindow counts advertisements of a zero receive window by this direction's sender (SYN, FIN and
	// RST segments excluded, as Wireshark's tcp.analysis.zero_window).
	ZeroWindow uint64 `json:"zero_window"`
	// WindowFull counts data segments that fill the receiver's advertised window exactly (Wireshark's
	// tcp.analysis.window_full); known only for connections whose handshake was captured.
	WindowFull uint64 `json:"window_full"`
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Packets += o.Packets
	c.PayloadBytes += o.PayloadBytes
	c.SYN += o.SYN
	c.SYNRetrans += o.SYNRetrans
	c.SYNACK += o.SYNACK
	c.SYNACKRetrans += o.SYNACKRetrans
	c.RST += o.RST
	c.FIN += o.FIN
	c.ZeroWindow += o.ZeroWindow
	c.WindowFull += o.WindowFull
}

// Window is the counts of one time window: [Start, Start+Result.Window) after Result.Origin.
type Window struct {
	Start time.Duration `json:"start_ns"`
	Counts
}

// Direction is the traffic from one address to another.
type Direction struct {
	Src     netip.Addr `json:"src"`
	Dst     netip.Addr `json:"dst"`
	SrcRole Role       `json:"src_role"`
	DstRole Role       `json:"dst_role"`
	Total   Counts     `json:"total"`
	// Windows holds the non-empty windows in time order.
	Windows []Window `json:"windows"`
}

// Result is the analysis of one capture. It is JSON-serialisable.
type Result struct {
	LinkType string `json:"link_type"`
	// Records is every packet record read; TCP, Other (non-TCP, non-first fragments) and Malformed (headers
	// truncated or inconsistent) add up to it.
	Records   uint64        `json:"records"`
	TCP       uint64        `json:"tcp"`
	Other     uint64        `json:"other"`
	Malformed uint64        `json:"malformed"`
	First     time.Time     `json:"first"`
	Last      time.Time     `json:"last"`
	Origin    time.Time     `json:"origin"`
	Window    time.Duration `json:"window_ns"`
	// Directions are sorted by source, then destination address.
	Directions []Direction `json:"directions"`
	// RSTBy counts RST segments by the role of their sender.
	RSTBy    map[Role]uint64 `json:"rst_by"`
	Conns    ConnSummary     `json:"conns"`
	ConnList []Conn          `json:"conn_list,omitempty"`
}

// Total sums the directions for which keep returns true (all when keep is nil).
func (r *Result) Total(keep func(Direction) bool) Counts {
	var c Counts
	for _, d := range r.Directions {
		if keep == nil || keep(d) {
			c.Add(d.Total)
		}
	}
	return c
}

// AnalyseFile analyses the pcap or pcapng file at path.
func AnalyseFile(path string, opts Options) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("analyse: %w", err)
	}
	defer f.Close()
	res, err := Analyse(f, opts)
	if err != nil {
		return res, fmt.Errorf("analyse %s: %w", path, err)
	}
	return res, nil
}

// packetReader is what pcapgo's pcap and pcapng readers have in common.
type packetReader interface {
	ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// Analyse reads a pcap or pcapng stream (gzip-compressed pcap too) packet by packet, in constant memory
// apart from the connections in flight. A damaged or truncated stream returns what was analysed up to the
// damage together with the error.
func Analyse(r io.Reader, opts Options) (*Result, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	pr, linkOf, lt, err := openReader(br)
	if err != nil {
		return nil, fmt.Errorf("read capture header: %w", err)
	}
	a := newAnalyser(opts, lt.String())
	for {
		data, ci, err := pr.ZeroCopyReadPacketData()
		if errors.Is(err, io.EOF) {
			return a.finish(), nil
		}
		if err != nil {
			return a.finish(), fmt.Errorf("packet %d: %w", a.res.Records+1, err)
		}
		link, err := linkOf(ci.InterfaceIndex)
		if err != nil {
			return a.finish(), fmt.Errorf("packet %d: %w", a.res.Records+1, err)
		}
		a.packet(link, data, ci.Length, ci.Timestamp)
	}
}

// openReader detects pcap or pcapng and returns a reader, the link decoder of each interface and the
// first interface's link type.
func openReader(br *bufio.Reader) (packetReader, func(int) (linkDecoder, error), layers.LinkType, error) {
	magic, err := br.Peek(4)
	if err != nil {
		return nil, nil, 0, err
	}
	if binary.LittleEndian.Uint32(magic) != 0x0A0D0D0A {
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, nil, 0, err
		}
		dec, err := linkDecoderFor(pr.LinkType())
		if err != nil {
			return nil, nil, 0, err
		}
		return pr, func(int) (linkDecoder, error) { return dec, nil }, pr.LinkType(), nil
	}
	ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		return nil, nil, 0, err
	}
	decs := map[int]linkDecoder{}
	linkOf := func(i int) (linkDecoder, error) {
		if d, ok := decs[i]; ok {
			return d, nil
		}
		iface, err := ng.Interface(i)
		if err != nil {
			return nil, err
		}
		d, err := linkDecoderFor(iface.LinkType)
		if err != nil {
			return nil, err
		}
		decs[i] = d
		return d, nil
	}
	return ng, linkOf, ng.LinkType(), nil
}
