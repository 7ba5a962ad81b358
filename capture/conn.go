package capture

import (
	"net/netip"
	"time"
)

// ConnEnd is one end of a connection and what it sent.
type ConnEnd struct {
	Addr         netip.AddrPort `json:"addr"`
	Role         Role           `json:"role"`
	Packets      uint64         `json:"packets"`
	PayloadBytes uint64         `json:"payload_bytes"`
	FIN          int            `json:"fin"`
	RST          int            `json:"rst"`
	// ZeroWindowAdverts counts this end's zero-window advertisements; ZeroWindowTime sums the periods from
	// a zero advertisement to this end's next non-zero window (or its last packet).
	ZeroWindowAdverts int           `json:"zero_window_adverts"`
	ZeroWindowTime    time.Duration `json:"zero_window_ns"`
	// ZeroWindowAfter is how many bytes of the peer's data this end had acknowledged when it first advertised
	// a zero window: what its receive buffer and its application took before it closed the window (0 when
	// it never did, or when the peer's SYN was not captured).
	ZeroWindowAfter uint64 `json:"zero_window_after_bytes,omitempty"`
	WindowFull      int    `json:"window_full"`
}

// Conn is one TCP connection as the capture saw it.
type Conn struct {
	// Initiator sent the SYN. Without a captured SYN the connection is Partial and the initiator is a guess
	// (the receiver of a SYN-ACK, else the first sender).
	Initiator ConnEnd   `json:"initiator"`
	Responder ConnEnd   `json:"responder"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Partial   bool      `json:"partial"`
	// SYNs counts the initiator's SYNs, retransmissions included.
	SYNs          int  `json:"syns"`
	SYNRetrans    int  `json:"syn_retrans"`
	SYNACKRetrans int  `json:"synack_retrans"`
	Established   bool `json:"established"`
	// Refused: the responder answered the SYN with an RST.
	Refused bool `json:"refused"`
	// Handshake runs from the first SYN to the initiator's ACK of the SYN-ACK (Wireshark's initial RTT; it
	// includes SYN retransmission timeouts). SYNToSYNACK runs from the last SYN before the first SYN-ACK
	// to that SYN-ACK (the responder's side of the RTT, as seen where the capture was taken).
	Handshake   time.Duration `json:"handshake_ns"`
	SYNToSYNACK time.Duration `json:"syn_to_synack_ns"`
	ZeroWindow  bool          `json:"zero_window"`
	// ClosedFirst is "initiator" or "responder": the end whose FIN or RST came first ("" if neither sent one);
	// CloseKind is "fin" or "rst".
	ClosedFirst     string `json:"closed_first"`
	ClosedFirstRole Role   `json:"closed_first_role,omitempty"`
	CloseKind       string `json:"close_kind"`
	// TimeWait says which end the TCP state machine leaves in TIME_WAIT, as the FINs' acknowledgement numbers
	// show: "initiator" or "responder" (the end whose FIN came first, when the other's FIN acknowledged
	// it), "both" (a simultaneous close: the second FIN was sent before its sender had processed the first,
	// so it does not acknowledge it, and both ends go through CLOSING to TIME_WAIT), or "" (an RST, or no
	// FIN). The order of the FINs on the wire alone does not tell: a FIN captured first may still be
	// unprocessed by the peer's kernel when the peer closes (seeds/001: the backend's FIN came first in the
	// capture, yet the checker kept the TIME_WAIT).
	TimeWait string `json:"time_wait,omitempty"`
}

// connKey is a connection's address pair in canonical order (a < b).
type connKey struct{ a, b netip.AddrPort }

// side is one end's tracking state.
type side struct {
	end      ConnEnd
	sawSYN   bool
	isn      uint32
	wscale   int8
	lastAck  uint32
	hasAck   bool
	win      uint32 // last advertised window in bytes (scaled)
	winKnown bool
	inZW     bool
	zwSince  time.Time
	// finSeq is the sequence number of this side's first FIN; finAcksPeer says whether that FIN segment
	// acknowledged the peer's FIN (the peer's FIN had been processed when this side closed).
	finSeq      uint32
	finAcksPeer bool
}

// conn tracks one connection; side 0 is the initiator.
type conn struct {
	id          uint64 // order of appearance
	side        [2]side
	dirs        [2]*dirStats
	start, last time.Time
	firstSYN    time.Time
	lastSYN     time.Time
	sawSYNACK   bool
	syns        int
	synRetrans  int
	synackRetr  int
	established bool
	partial     bool
	refused     bool
	handshake   time.Duration
	synToSynack time.Duration
	closedFirst int // -1 while open
	closeKind   string
}

// events are what one segment turned out to be, beyond its flags.
type events uint8

const (
	evSYNRetrans events = 1 << iota
	evSYNACKRetrans
	evZeroWindow
	evWindowFull
)

func (c *conn) closed() bool {
	return c.side[0].end.RST > 0 || c.side[1].end.RST > 0 || (c.side[0].end.FIN > 0 && c.side[1].end.FIN > 0)
}

// update accounts segment s sent by side i at ts.
func (c *conn) update(i int, s *segment, ts time.Time) events {
	me := &c.side[i]
	c.last = ts
	me.end.Packets++
	me.end.PayloadBytes += uint64(s.payload)
	ev := c.handshakeStep(i, s, ts)
	if s.flags&flagRST != 0 {
		me.end.RST++
		if !c.established && i == 1 && c.side[0].sawSYN {
			c.refused = true
		}
		c.close(i, "rst")
	}
	if s.flags&flagFIN != 0 {
		if me.end.FIN == 0 {
			peer := &c.side[1-i]
			me.finSeq = s.seq + uint32(s.payload)
			me.finAcksPeer = peer.end.FIN > 0 && s.flags&flagACK != 0 && int32(s.ack-(peer.finSeq+1)) >= 0
		}
		me.end.FIN++
		c.close(i, "fin")
	}
	return ev | c.windows(i, s, ts)
}

// handshakeStep follows SYN, SYN-ACK and the handshake's final ACK.
func (c *conn) handshakeStep(i int, s *segment, ts time.Time) events {
	me := &c.side[i]
	var ev events
	switch s.flags & (flagSYN | flagACK | flagRST) {
	case flagSYN:
		c.syns++
		c.lastSYN = ts
		if me.sawSYN && me.isn == s.seq {
			c.synRetrans++
			return evSYNRetrans
		}
		me.sawSYN, me.isn, me.wscale, c.firstSYN = true, s.seq, s.wscale, ts
	case flagSYN | flagACK:
		if me.sawSYN && me.isn == s.seq {
			c.synackRetr++
			return evSYNACKRetrans
		}
		me.sawSYN, me.isn, me.wscale = true, s.seq, s.wscale
		if !c.sawSYNACK && c.side[0].sawSYN {
			c.synToSynack = ts.Sub(c.lastSYN)
		}
		c.sawSYNACK = true
	case flagACK:
		if !c.established && i == 0 && c.side[1].sawSYN && s.ack == c.side[1].isn+1 {
			c.established = true
			if c.side[0].sawSYN {
				c.handshake = ts.Sub(c.firstSYN)
			}
		}
	}
	return ev
}

func (c *conn) close(i int, kind string) {
	if c.closedFirst < 0 {
		c.closedFirst, c.closeKind = i, kind
	}
}

// windows follows advertised windows: zero-window periods of the sender, and whether the sender's data
// fills the receiver's window.
func (c *conn) windows(i int, s *segment, ts time.Time) events {
	me, peer := &c.side[i], &c.side[1-i]
	var ev events
	if s.payload > 0 && s.flags&(flagSYN|flagFIN|flagRST) == 0 && peer.winKnown && peer.hasAck &&
		s.seq+uint32(s.payload) == peer.lastAck+peer.win {
		ev |= evWindowFull
		me.end.WindowFull++
	}
	if s.flags&flagRST != 0 {
		return ev
	}
	if s.flags&flagACK != 0 {
		me.lastAck, me.hasAck = s.ack, true
	}
	if shift, ok := c.scale(i, s); ok {
		me.win, me.winKnown = uint32(s.win)<<shift, true
	}
	switch {
	case s.win == 0 && s.flags&(flagSYN|flagFIN) == 0:
		ev |= evZeroWindow
		me.end.ZeroWindowAdverts++
		if me.end.ZeroWindowAdverts == 1 && peer.sawSYN && s.flags&flagACK != 0 {
			me.end.ZeroWindowAfter = uint64(s.ack - peer.isn - 1)
		}
		if !me.inZW {
			me.inZW, me.zwSince = true, ts
		}
	case s.win != 0 && me.inZW:
		me.end.ZeroWindowTime += ts.Sub(me.zwSince)
		me.inZW = false
	}
	return ev
}

// scale is the shift of side i's window field in s, and whether it is known (both SYNs captured).
func (c *conn) scale(i int, s *segment) (uint, bool) {
	if s.flags&flagSYN != 0 {
		return 0, true // a SYN's window is never scaled
	}
	a, b := &c.side[0], &c.side[1]
	if !a.sawSYN || !b.sawSYN {
		return 0, false
	}
	if a.wscale < 0 || b.wscale < 0 {
		return 0, true
	}
	return uint(c.side[i].wscale), true
}

// export ends open zero-window periods at the last packet and returns the connection's record.
func (c *conn) export() Conn {
	for i := range c.side {
		if sd := &c.side[i]; sd.inZW {
			sd.end.ZeroWindowTime += c.last.Sub(sd.zwSince)
			sd.inZW = false
		}
	}
	out := Conn{Initiator: c.side[0].end, Responder: c.side[1].end, Start: c.start, End: c.last,
		Partial: c.partial, SYNs: c.syns, SYNRetrans: c.synRetrans, SYNACKRetrans: c.synackRetr,
		Established: c.established, Refused: c.refused, Handshake: c.handshake, SYNToSYNACK: c.synToSynack,
		CloseKind: c.closeKind}
	out.ZeroWindow = out.Initiator.ZeroWindowAdverts > 0 || out.Responder.ZeroWindowAdverts > 0
	switch c.closedFirst {
	case 0:
		out.ClosedFirst, out.ClosedFirstRole = "initiator", out.Initiator.Role
	case 1:
		out.ClosedFirst, out.ClosedFirstRole = "responder", out.Responder.Role
	}
	out.TimeWait = c.timeWait()
	return out
}

// timeWait is which end the FINs leave in TIME_WAIT (see Conn.TimeWait).
func (c *conn) timeWait() string {
	if c.closedFirst < 0 || c.closeKind != "fin" || c.side[0].end.RST > 0 || c.side[1].end.RST > 0 {
		return ""
	}
	name := [2]string{"initiator", "responder"}
	if second := &c.side[1-c.closedFirst]; second.end.FIN > 0 && !second.finAcksPeer {
		return "both"
	}
	return name[c.closedFirst]
}
