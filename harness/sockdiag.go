package harness

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// TCP states as the kernel numbers them (include/net/tcp_states.h), for DiagTCP's state mask.
const (
	TCPEstablished = 1
	TCPSynSent     = 2
	TCPSynRecv     = 3
	TCPFinWait1    = 4
	TCPFinWait2    = 5
	TCPTimeWait    = 6
	TCPClose       = 7
	TCPCloseWait   = 8
	TCPLastAck     = 9
	TCPListen      = 10
	TCPClosing     = 11
)

// DiagSocket is one TCP socket from an inet_diag dump.
type DiagSocket struct {
	State  uint8
	Local  netip.AddrPort
	Remote netip.AddrPort
	Inode  uint32
	RQueue uint32 // for a listener: the accept queue length
	WQueue uint32 // for a listener: the backlog
}

// sizes of the kernel's inet_diag structures (include/uapi/linux/inet_diag.h).
const (
	sizeofDiagReqV2 = 56
	sizeofDiagMsg   = 72
	sockDiagByFam   = 20 // SOCK_DIAG_BY_FAMILY
)

// DiagTCP dumps the TCP sockets whose state is in mask (1<<TCPListen, ...) of the CURRENT thread's network
// namespace, IPv4 and IPv6, calling fn for each. Run it inside a host's Do. The kernel filters by state, so
// a LISTEN dump costs the same with 30,000 TIME_WAIT sockets as with none, unlike reading /proc/net/tcp.
func DiagTCP(mask uint32, fn func(*DiagSocket)) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 64<<10)
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := diagDump(fd, fam, mask, buf, fn); err != nil {
			return err
		}
	}
	return nil
}

func diagDump(fd int, fam uint8, mask uint32, buf []byte, fn func(*DiagSocket)) error {
	req := make([]byte, unix.NLMSG_HDRLEN+sizeofDiagReqV2)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], sockDiagByFam)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	req[16], req[17] = fam, unix.IPPROTO_TCP
	ne.PutUint32(req[20:], mask)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag request: %w", err)
	}
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("sock_diag receive: %w", err)
		}
		done, err := diagParse(buf[:n], fn)
		if err != nil || done {
			return err
		}
	}
}

// diagParse walks one datagram of netlink messages; done is true at NLMSG_DONE.
func diagParse(b []byte, fn func(*DiagSocket)) (done bool, err error) {
	ne := binary.NativeEndian
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(ne.Uint32(b[0:]))
		typ := ne.Uint16(b[4:])
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return false, fmt.Errorf("sock_diag: bad message length %d", l)
		}
		switch typ {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			if l >= unix.NLMSG_HDRLEN+4 {
				if e := int32(ne.Uint32(b[unix.NLMSG_HDRLEN:])); e != 0 {
					return false, fmt.Errorf("sock_diag: %w", unix.Errno(-e))
				}
			}
			return true, nil
		}
		if l >= unix.NLMSG_HDRLEN+sizeofDiagMsg {
			fn(decodeDiagMsg(b[unix.NLMSG_HDRLEN:l]))
		}
		b = b[min(nlAlign(l), len(b)):]
	}
	return false, nil
}

func nlAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// decodeDiagMsg decodes struct inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid (ports in
// network order, 16-byte addresses), expires, rqueue, wqueue, uid, inode.
func decodeDiagMsg(m []byte) *DiagSocket {
	ne := binary.NativeEndian
	s := &DiagSocket{State: m[1], RQueue: ne.Uint32(m[56:]), WQueue: ne.Uint32(m[60:]), Inode: ne.Uint32(m[68:])}
	sport, dport := binary.BigEndian.Uint16(m[4:]), binary.BigEndian.Uint16(m[6:])
	if m[0] == unix.AF_INET {
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(m[8:12])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(m[24:28])), dport)
	} else {
		s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(m[8:24])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(m[24:40])), dport)
	}
	return s
}
