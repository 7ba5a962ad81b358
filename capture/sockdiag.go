package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// TCP states as the kernel numbers them (include/net/tcp_states.h).
const (
	tcpEstablished = 1 + iota
	tcpSynSent
	tcpSynRecv
	tcpFinWait1
	tcpFinWait2
	tcpTimeWait
	tcpClose
	tcpCloseWait
	tcpLastAck
	tcpListen
	tcpClosing
	tcpNewSynRecv
)

// StateNames are the kernel's names of the TCP states, indexed by state number.
var StateNames = [...]string{tcpEstablished: "ESTABLISHED", tcpSynSent: "SYN_SENT", tcpSynRecv: "SYN_RECV",
	tcpFinWait1: "FIN_WAIT1", tcpFinWait2: "FIN_WAIT2", tcpTimeWait: "TIME_WAIT", tcpClose: "CLOSE",
	tcpCloseWait: "CLOSE_WAIT", tcpLastAck: "LAST_ACK", tcpListen: "LISTEN", tcpClosing: "CLOSING"}

// stateMask turns state names into inet_diag's idiag_states bitmask; empty means every state.
func stateMask(names []string) (uint32, error) {
	if len(names) == 0 {
		return 0x1FFE, nil // states 1-12
	}
	var mask uint32
	for _, n := range names {
		i := slices.Index(StateNames[:], strings.ToUpper(n))
		if i <= 0 {
			return 0, fmt.Errorf("state %q: want one of %s", n, strings.Join(StateNames[1:], ", "))
		}
		mask |= 1 << i
		if i == tcpSynRecv {
			mask |= 1 << tcpNewSynRecv // request sockets
		}
		if i == tcpFinWait2 {
			mask |= 1 << tcpTimeWait // orphaned FIN_WAIT2 sockets live as time-wait minisockets
		}
	}
	return mask, nil
}

// diagMsg is the part of struct inet_diag_msg the sampler uses.
type diagMsg struct {
	state uint8
	timer uint8
	sport uint16
	inode uint32
}

// sockDiag is a NETLINK_SOCK_DIAG socket created inside a namespace; it dumps that namespace's sockets
// from any thread.
type sockDiag struct {
	mu       sync.Mutex
	fd       int
	seq      uint32
	buf      []byte
	noCompat bool // the kernel refused TCPDIAG_GETSOCK
}

// Netlink constants (include/uapi/linux/netlink.h, sock_diag.h).
const (
	sockDiagByFamily = 20
	tcpDiagGetSock   = 18
	nlmsgHdrLen      = 16
	diagReqLen       = 56
	compatReqLen     = 60
	diagMsgLen       = 72
	nlmFDumpIntr     = 0x10
)

// openSockDiag must run on a thread inside the namespace to be dumped.
func openSockDiag() (*sockDiag, error) {
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
	return &sockDiag{fd: fd, buf: make([]byte, 1<<16)}, nil
}

// dump walks the TCP sockets of both address families whose state is in mask. It reports whether the kernel
// flagged the dump as interrupted (sockets changed under it).
//
// It asks with the old TCPDIAG_GETSOCK request, which the kernel serves with one walk of the socket hash for
// both families (AF_UNSPEC); a SOCK_DIAG_BY_FAMILY request walks the whole hash once per family. A kernel
// without the old request gets the two newer ones.
func (d *sockDiag) dump(mask uint32, fn func(*diagMsg)) (interrupted bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
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
func (d *sockDiag) compatReq(mask uint32) []byte {
	req := d.header(tcpDiagGetSock, compatReqLen)
	binary.NativeEndian.PutUint32(req[nlmsgHdrLen+52:], mask) // after family, lengths, ext and the socket id
	return req
}

// byFamilyReq is a SOCK_DIAG_BY_FAMILY dump request (struct inet_diag_req_v2).
func (d *sockDiag) byFamilyReq(fam uint8, mask uint32) []byte {
	req := d.header(sockDiagByFamily, diagReqLen)
	req[nlmsgHdrLen], req[nlmsgHdrLen+1] = fam, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(req[nlmsgHdrLen+4:], mask)
	return req
}

func (d *sockDiag) header(typ uint16, bodyLen int) []byte {
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
func (d *sockDiag) request(req []byte, fn func(*diagMsg)) (bool, error) {
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
func (d *sockDiag) parse(b []byte, fn func(*diagMsg)) (done, intr bool, err error) {
	ne := binary.NativeEndian
	var m diagMsg
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
			m.state, m.timer = body[1], body[2]
			m.sport = binary.BigEndian.Uint16(body[4:6])
			m.inode = ne.Uint32(body[68:72])
			fn(&m)
		}
	}
	return false, intr, nil
}

func (d *sockDiag) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}
