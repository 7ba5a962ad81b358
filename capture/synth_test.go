package capture

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// synth writes synthetic Ethernet/IPv4/TCP captures for tests that need exact, known packets. Only headers
// are captured; the IP length fields carry the payload size, as in a capture with a small snaplen.
type synth struct {
	buf  bytes.Buffer
	w    *pcapgo.Writer
	t0   time.Time
	vlan bool
}

func newSynth(tb testing.TB) *synth {
	tb.Helper()
	s := &synth{t0: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	s.w = pcapgo.NewWriterNanos(&s.buf)
	if err := s.w.WriteFileHeader(128, layers.LinkTypeEthernet); err != nil {
		tb.Fatal(err)
	}
	return s
}

// seg is one TCP segment to write.
type seg struct {
	at       time.Duration
	src, dst netip.AddrPort
	flags    uint8
	seq, ack uint32
	win      uint16
	payload  int
	wscale   int8 // >= 0 adds a window scale option
}

func (s *synth) add(tb testing.TB, g seg) {
	tb.Helper()
	var opts []byte
	if g.wscale >= 0 {
		opts = []byte{1, 3, 3, byte(g.wscale)} // NOP, window scale
	}
	tcp := make([]byte, 20+len(opts))
	binary.BigEndian.PutUint16(tcp[0:], g.src.Port())
	binary.BigEndian.PutUint16(tcp[2:], g.dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], g.seq)
	binary.BigEndian.PutUint32(tcp[8:], g.ack)
	tcp[12] = byte(len(tcp)/4) << 4
	tcp[13] = g.flags
	binary.BigEndian.PutUint16(tcp[14:], g.win)
	copy(tcp[20:], opts)
	var l3 []byte
	etherType := uint16(etherIPv4)
	if g.src.Addr().Is4() {
		l3 = make([]byte, 20)
		l3[0] = 0x45
		binary.BigEndian.PutUint16(l3[2:], uint16(20+len(tcp)+g.payload))
		l3[8], l3[9] = 64, 6
		copy(l3[12:], g.src.Addr().AsSlice())
		copy(l3[16:], g.dst.Addr().AsSlice())
	} else {
		etherType = etherIPv6
		l3 = make([]byte, 40)
		l3[0] = 0x60
		binary.BigEndian.PutUint16(l3[4:], uint16(len(tcp)+g.payload))
		l3[6], l3[7] = 6, 64
		copy(l3[8:], g.src.Addr().AsSlice())
		copy(l3[24:], g.dst.Addr().AsSlice())
	}
	eth := make([]byte, 14, 18)
	if s.vlan {
		eth = append(eth, 0, 0, 0, 0)
		binary.BigEndian.PutUint16(eth[12:], 0x8100)
		binary.BigEndian.PutUint16(eth[14:], 42)
		binary.BigEndian.PutUint16(eth[16:], etherType)
	} else {
		binary.BigEndian.PutUint16(eth[12:], etherType)
	}
	data := append(append(eth, l3...), tcp...)
	ci := gopacket.CaptureInfo{Timestamp: s.t0.Add(g.at), CaptureLength: len(data), Length: len(data) + g.payload}
	if err := s.w.WritePacket(ci, data); err != nil {
		tb.Fatal(err)
	}
}

// exchange writes a complete connection: handshake (both sides with window scale 7), req bytes from the
// client, resp bytes from the server, then the client closes first. Segments are 1 ms apart from at.
func (s *synth) exchange(tb testing.TB, at time.Duration, cli, srv netip.AddrPort, req, resp int) {
	tb.Helper()
	const ci, si = 1000, 5000
	ms := time.Millisecond
	for i, g := range []seg{
		{src: cli, dst: srv, flags: flagSYN, seq: ci, win: 64240, wscale: 7},
		{src: srv, dst: cli, flags: flagSYN | flagACK, seq: si, ack: ci + 1, win: 65160, wscale: 7},
		{src: cli, dst: srv, flags: flagACK, seq: ci + 1, ack: si + 1, win: 502, wscale: -1},
		{src: cli, dst: srv, flags: flagACK | 0x08, seq: ci + 1, ack: si + 1, win: 502, payload: req, wscale: -1},
		{src: srv, dst: cli, flags: flagACK | 0x08, seq: si + 1, ack: ci + 1 + uint32(req), win: 509,
			payload: resp, wscale: -1},
		{src: cli, dst: srv, flags: flagACK | flagFIN, seq: ci + 1 + uint32(req), ack: si + 1 + uint32(resp),
			win: 501, wscale: -1},
		{src: srv, dst: cli, flags: flagACK | flagFIN, seq: si + 1 + uint32(resp), ack: ci + 2 + uint32(req),
			win: 509, wscale: -1},
		{src: cli, dst: srv, flags: flagACK, seq: ci + 2 + uint32(req), ack: si + 2 + uint32(resp), win: 501,
			wscale: -1},
	} {
		g.at = at + time.Duration(i)*ms
		s.add(tb, g)
	}
}

func (s *synth) bytes() []byte { return s.buf.Bytes() }
