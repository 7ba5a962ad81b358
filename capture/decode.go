package capture

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/gopacket/gopacket/layers"
)

// TCP flag bits (the low byte of the flags field).
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
	flagACK = 0x10
)

// segment is what the analyser needs of one TCP packet. It is decoded by hand, without gopacket's layer
// machinery, because the analyser must stream multi-GB captures several times faster than tshark.
type segment struct {
	src, dst     netip.Addr
	sport, dport uint16
	seq, ack     uint32
	flags        uint8
	win          uint16
	payload      int  // TCP payload length from the IP length fields, not from the captured bytes
	wscale       int8 // window scale option of a SYN; -1 when absent or not captured
}

// decodeResult classifies one packet.
type decodeResult int

const (
	decodedTCP decodeResult = iota
	decodedOther
	decodedMalformed
)

// linkDecoder strips a link-layer header and returns the network protocol (an EtherType) and its bytes.
type linkDecoder func(data []byte) (etherType uint16, rest []byte, ok bool)

// Ethernet types the analyser follows.
const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86DD
)

// linkDecoderFor returns the decoder of a pcap link type, or an error for link types the analyser does not read.
func linkDecoderFor(lt layers.LinkType) (linkDecoder, error) {
	switch lt {
	case layers.LinkTypeEthernet:
		return decodeEthernet, nil
	case layers.LinkTypeLinuxSLL:
		return decodeSLL, nil
	case layers.LinkType(276): // LINUX_SLL2
		return decodeSLL2, nil
	case layers.LinkTypeRaw, layers.LinkType(12), layers.LinkTypeIPv4, layers.LinkTypeIPv6:
		return decodeRawIP, nil
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		return decodeNull, nil
	}
	return nil, fmt.Errorf("link type %d (%s): not supported", uint32(lt), lt)
}

func decodeEthernet(b []byte) (uint16, []byte, bool) {
	if len(b) < 14 {
		return 0, nil, false
	}
	et, b := binary.BigEndian.Uint16(b[12:14]), b[14:]
	for range 2 { // up to two VLAN tags (802.1Q, 802.1ad)
		if et != 0x8100 && et != 0x88A8 && et != 0x9100 {
			break
		}
		if len(b) < 4 {
			return 0, nil, false
		}
		et, b = binary.BigEndian.Uint16(b[2:4]), b[4:]
	}
	return et, b, true
}

func decodeSLL(b []byte) (uint16, []byte, bool) {
	if len(b) < 16 {
		return 0, nil, false
	}
	return binary.BigEndian.Uint16(b[14:16]), b[16:], true
}

func decodeSLL2(b []byte) (uint16, []byte, bool) {
	if len(b) < 20 {
		return 0, nil, false
	}
	return binary.BigEndian.Uint16(b[0:2]), b[20:], true
}

func decodeRawIP(b []byte) (uint16, []byte, bool) {
	if len(b) < 1 {
		return 0, nil, false
	}
	switch b[0] >> 4 {
	case 4:
		return etherIPv4, b, true
	case 6:
		return etherIPv6, b, true
	}
	return 0, b, true
}

// decodeNull reads BSD loopback's 4-byte address family, in either byte order.
func decodeNull(b []byte) (uint16, []byte, bool) {
	if len(b) < 4 {
		return 0, nil, false
	}
	fam := binary.LittleEndian.Uint32(b[:4])
	if fam > 0xFFFF {
		fam = binary.BigEndian.Uint32(b[:4])
	}
	switch fam {
	case 2:
		return etherIPv4, b[4:], true
	case 10, 24, 28, 30:
		return etherIPv6, b[4:], true
	}
	return 0, b[4:], true
}

// decodePacket decodes data (a captured packet whose wire length was wireLen) into s.
func decodePacket(link linkDecoder, data []byte, wireLen int, s *segment) decodeResult {
	et, b, ok := link(data)
	if !ok {
		return decodedMalformed
	}
	// Bytes of the wire packet beyond the captured network-layer bytes (for length fields set to 0 by
	// segmentation offload).
	wireRest := wireLen - (len(data) - len(b))
	var tcp []byte
	var tcpLen int
	var res decodeResult
	switch et {
	case etherIPv4:
		tcp, tcpLen, res = decodeIPv4(b, wireRest, s)
	case etherIPv6:
		tcp, tcpLen, res = decodeIPv6(b, wireRest, s)
	default:
		return decodedOther
	}
	if res != decodedTCP {
		return res
	}
	return decodeTCP(tcp, tcpLen, s)
}

// decodeIPv4 returns the TCP header bytes, the TCP segment's length on the wire and the result.
func decodeIPv4(b []byte, wireRest int, s *segment) ([]byte, int, decodeResult) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return nil, 0, decodedMalformed
	}
	ihl := int(b[0]&0x0F) * 4
	if ihl < 20 || len(b) < ihl {
		return nil, 0, decodedMalformed
	}
	if b[9] != 6 || binary.BigEndian.Uint16(b[6:8])&0x1FFF != 0 {
		return nil, 0, decodedOther // not TCP, or a non-first fragment
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if total == 0 { // TSO/GSO packet whose length field was left 0
		total = wireRest
	}
	if total < ihl {
		return nil, 0, decodedMalformed
	}
	s.src = netip.AddrFrom4([4]byte(b[12:16]))
	s.dst = netip.AddrFrom4([4]byte(b[16:20]))
	return b[ihl:], total - ihl, decodedTCP
}

// decodeIPv6 walks the extension headers up to TCP.
func decodeIPv6(b []byte, wireRest int, s *segment) ([]byte, int, decodeResult) {
	if len(b) < 40 || b[0]>>4 != 6 {
		return nil, 0, decodedMalformed
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	if plen == 0 { // jumbogram or offload: the wire length tells
		plen = wireRest - 40
	}
	s.src = netip.AddrFrom16([16]byte(b[8:24]))
	s.dst = netip.AddrFrom16([16]byte(b[24:40]))
	next, rest := b[6], b[40:]
	for range 8 {
		var hl int
		switch next {
		case 6:
			return rest, plen, decodedTCP
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(rest) < 2 {
				return nil, 0, decodedMalformed
			}
			hl = (int(rest[1]) + 1) * 8
		case 44: // fragment
			if len(rest) < 8 {
				return nil, 0, decodedMalformed
			}
			if binary.BigEndian.Uint16(rest[2:4])&0xFFF8 != 0 {
				return nil, 0, decodedOther
			}
			hl = 8
		case 51: // authentication header
			if len(rest) < 2 {
				return nil, 0, decodedMalformed
			}
			hl = (int(rest[1]) + 2) * 4
		default:
			return nil, 0, decodedOther
		}
		if len(rest) < hl {
			return nil, 0, decodedMalformed
		}
		next, rest, plen = rest[0], rest[hl:], plen-hl
	}
	return nil, 0, decodedOther
}

// decodeTCP reads the TCP header; segLen is the segment's length (header and payload) on the wire.
func decodeTCP(b []byte, segLen int, s *segment) decodeResult {
	if len(b) < 20 {
		return decodedMalformed
	}
	doff := int(b[12]>>4) * 4
	if doff < 20 || segLen < doff {
		return decodedMalformed
	}
	s.sport = binary.BigEndian.Uint16(b[0:2])
	s.dport = binary.BigEndian.Uint16(b[2:4])
	s.seq = binary.BigEndian.Uint32(b[4:8])
	s.ack = binary.BigEndian.Uint32(b[8:12])
	s.flags = b[13]
	s.win = binary.BigEndian.Uint16(b[14:16])
	s.payload = segLen - doff
	s.wscale = -1
	if s.flags&flagSYN != 0 && len(b) >= doff {
		s.wscale = windowScale(b[20:doff])
	}
	return decodedTCP
}

// windowScale finds the window scale option (kind 3) in TCP options; -1 when absent or malformed.
func windowScale(opts []byte) int8 {
	for len(opts) > 0 {
		switch kind := opts[0]; kind {
		case 0: // end of options
			return -1
		case 1: // no-op
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || opts[1] < 2 || int(opts[1]) > len(opts) {
			return -1
		}
		if opts[0] == 3 && opts[1] == 3 {
			return int8(min(opts[2], 14))
		}
		opts = opts[opts[1]:]
	}
	return -1
}
