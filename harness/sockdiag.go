package harness

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"
)

// TCP states as the kernel numbers them (include/net/tcp_states.h), for the state masks of DiagTCP and
// SockDiag.Dump (1<<TCPListen, ...).
const (
	TCPEstablished = 1 + iota
	TCPSynSent
	TCPSynRecv
	TCPFinWait1
	TCPFinWait2
	TCPTimeWait
	TCPClose
	TCPCloseWait
	TCPLastAck
	TCPListen
	TCPClosing
	TCPNewSynRecv // request sockets (a SYN_RECV before its accept)
)

// DiagSocket is one TCP socket from an inet_diag dump.
type DiagSocket struct {
	Family uint8 // unix.AF_INET or unix.AF_INET6
	State  uint8
	// Timer is the kernel's idiag_timer: 0 none, 1 retransmit, 2 keepalive, 3 TIME_WAIT, 4 zero-window probe.
	Timer  uint8
	Local  netip.AddrPort
	Remote netip.AddrPort
	Inode  uint32
	RQueue uint32 // for a listener: the accept queue length
	WQueue uint32 // for a listener: the backlog
}

// DiagTCP dumps the TCP sockets whose state is in mask (1<<TCPListen, ...) of the CURRENT thread's network
// namespace, IPv4 and IPv6, calling fn for each. Run it inside a host's Do. The kernel filters by state, so
// a LISTEN dump costs the same with 30,000 TIME_WAIT sockets as with none, unlike reading /proc/net/tcp.
// fn's socket is reused between calls: copy what it keeps.
func DiagTCP(mask uint32, fn func(*DiagSocket)) error {
	d, err := OpenSockDiag()
	if err != nil {
		return err
	}
	defer d.Close()
	_, err = d.Dump(mask, fn)
	return err
}

// SockDiag is a NETLINK_SOCK_DIAG socket created inside a network namespace: it dumps that namespace's TCP
// sockets from any thread, as often as asked (the socket-state sampler keeps one per host). Safe for
// concurrent use.
type SockDiag struct {
	mu       sync.Mutex
	fd       int
	seq      uint32
	buf      []byte
	msg      DiagSocket
	noCompat bool // the kernel refused TCPDIAG_GETSOCK
}

// Netlink and inet_diag constants and sizes (include/uapi/linux/netlink.h, sock_diag.h, inet_diag.h).
const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	tcpDiagGetSock   = 18 // TCPDIAG_GETSOCK
	nlmsgHdrLen      = 16
	diagReqV2Len     = 56 // struct inet_diag_req_v2
	diagReqLen       = 60 // struct inet_diag_req
	diagMsgLen       = 72 // struct inet_diag_msg
	nlmFDumpIntr     = 0x10
)

// OpenSockDiag opens a SockDiag for the network namespace of the calling thread: run it inside a host's Do.
func OpenSockDiag() (*SockDiag, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("open sock_diag socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind sock_diag socket: %w", err)
	}
	tv := unix.Timeval{Sec: 5}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set sock_diag timeout: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20) // a bigger buffer is only an optimisation
	return &SockDiag{fd: fd, buf: make([]byte, 1<<16)}, nil
}

// Dump walks the TCP sockets of both address families whose state is in mask, calling fn for each (the
// socket is reused between calls: copy what you keep). It reports whether the kernel flagged the dump as
// interrupted (sockets changed under it).
//
// It asks with the old TCPDIAG_GETSOCK request, which the kernel serves with one walk of the socket hash for
// both families (AF_UNSPEC); a SOCK_DIAG_BY_FAMILY request walks the whole hash once per family. A kernel
// without the old request gets the two newer ones.
func (d *SockDiag) Dump(mask uint32, fn func(*DiagSocket)) (interrupted bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return false, errors.New("sock_diag dump: socket closed")
	}
	if !d.noCompat {
		intr, err := d.request(d.compatReq(mask), fn)
		if err == nil {
			return intr, nil
		}
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EOPNOTSUPP) {
			return false, fmt.Errorf("sock_diag dump: %w", err)
		}
		d.noCompat = true
	}
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		intr, err := d.request(d.byFamilyReq(fam, mask), fn)
		if err != nil {
			return false, fmt.Errorf("sock_diag dump (family %d): %w", fam, err)
		}
		interrupted = interrupted || intr
	}
	return interrupted, nil
}

// compatReq is a TCPDIAG_GETSOCK dump request (struct inet_diag_req).
func (d *SockDiag) compatReq(mask uint32) []byte {
	req := d.header(tcpDiagGetSock, diagReqLen)
	binary.NativeEndian.PutUint32(req[nlmsgHdrLen+52:], mask) // after family, lengths, ext and the socket id
	return req
}

// byFamilyReq is a SOCK_DIAG_BY_FAMILY dump request (struct inet_diag_req_v2).
func (d *SockDiag) byFamilyReq(fam uint8, mask uint32) []byte {
	req := d.header(sockDiagByFamily, diagReqV2Len)
	req[nlmsgHdrLen], req[nlmsgHdrLen+1] = fam, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(req[nlmsgHdrLen+4:], mask)
	return req
}

func (d *SockDiag) header(typ uint16, bodyLen int) []byte {
	d.seq++
	req := make([]byte, nlmsgHdrLen+bodyLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:4], uint32(len(req)))
	ne.PutUint16(req[4:6], typ)
	ne.PutUint16(req[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:12], d.seq)
	return req
}

// request sends a dump request and reads its replies up to NLMSG_DONE.
func (d *SockDiag) request(req []byte, fn func(*DiagSocket)) (bool, error) {
	if err := unix.Sendto(d.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return false, err
	}
	intr := false
	for {
		n, _, err := unix.Recvfrom(d.fd, d.buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, err
		}
		done, i, err := d.parse(d.buf[:n], fn)
		intr = intr || i
		if err != nil || done {
			return intr, err
		}
	}
}

// parse walks one datagram of netlink messages; done is true at NLMSG_DONE.
func (d *SockDiag) parse(b []byte, fn func(*DiagSocket)) (done, intr bool, err error) {
	ne := binary.NativeEndian
	for len(b) >= nlmsgHdrLen {
		l := int(ne.Uint32(b[0:4]))
		typ, flags, seq := ne.Uint16(b[4:6]), ne.Uint16(b[6:8]), ne.Uint32(b[8:12])
		if l < nlmsgHdrLen || l > len(b) {
			return false, intr, fmt.Errorf("netlink message length %d of %d bytes", l, len(b))
		}
		body := b[nlmsgHdrLen:l]
		b = b[min((l+3)&^3, len(b)):]
		if seq != d.seq {
			continue // a reply to an abandoned earlier request
		}
		intr = intr || flags&nlmFDumpIntr != 0
		switch typ {
		case unix.NLMSG_DONE:
			return true, intr, nil
		case unix.NLMSG_ERROR:
			if len(body) >= 4 {
				if e := int32(ne.Uint32(body[0:4])); e != 0 {
					return true, intr, unix.Errno(-e)
				}
			}
			return true, intr, nil
		case sockDiagByFamily, tcpDiagGetSock:
			if len(body) < diagMsgLen {
				return false, intr, fmt.Errorf("inet_diag message of %d bytes", len(body))
			}
			decodeDiagMsg(body, &d.msg)
			fn(&d.msg)
		}
	}
	return false, intr, nil
}

// decodeDiagMsg decodes struct inet_diag_msg into s: family, state, timer, retrans, then inet_diag_sockid
// (ports in network order, 16-byte addresses), expires, rqueue, wqueue, uid, inode.
func decodeDiagMsg(m []byte, s *DiagSocket) {
	ne := binary.NativeEndian
	s.Family, s.State, s.Timer = m[0], m[1], m[2]
	s.RQueue, s.WQueue, s.Inode = ne.Uint32(m[56:]), ne.Uint32(m[60:]), ne.Uint32(m[68:])
	sport, dport := binary.BigEndian.Uint16(m[4:]), binary.BigEndian.Uint16(m[6:])
	if m[0] == unix.AF_INET {
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(m[8:12])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(m[24:28])), dport)
	} else {
		s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(m[8:24])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(m[24:40])), dport)
	}
}

// Close closes the socket (idempotent).
func (d *SockDiag) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}
