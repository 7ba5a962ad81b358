package harness

import (
	"net"
	"net/netip"
	"testing"
)

// TestSockDiagBothRequests checks that the old TCPDIAG_GETSOCK request (one walk for both families) and the
// SOCK_DIAG_BY_FAMILY fallback find the same listener with the same fields.
func TestSockDiagBothRequests(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want := netip.MustParseAddrPort(l.Addr().String())
	d, err := OpenSockDiag()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	find := func() (DiagSocket, int) {
		var got DiagSocket
		n := 0
		if _, err := d.Dump(1<<TCPListen, func(s *DiagSocket) {
			if s.Local == want {
				got = *s
				n++
			}
		}); err != nil {
			t.Fatal(err)
		}
		return got, n
	}
	compat, n := find()
	if n != 1 || compat.State != TCPListen || compat.Inode == 0 || d.noCompat {
		t.Fatalf("TCPDIAG_GETSOCK: %d matches, %+v (fell back: %v)", n, compat, d.noCompat)
	}
	d.noCompat = true
	byFamily, n := find()
	if n != 1 || byFamily != compat {
		t.Errorf("SOCK_DIAG_BY_FAMILY: %d matches, %+v; TCPDIAG_GETSOCK: %+v", n, byFamily, compat)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Dump(1<<TCPListen, func(*DiagSocket) {}); err == nil {
		t.Error("a dump on a closed socket succeeded")
	}
}
