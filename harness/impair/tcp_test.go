package impair_test

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// segOverhead is what each full TCP segment carries besides payload on a lab veth: Ethernet 14, IPv4 20,
// TCP with timestamps 32 bytes.
const segOverhead = 14 + 20 + 32

// tcpBulk sends from a to b as fast as TCP goes for skip+window and returns, over the window after skip
// (slow start excluded), the wire rate in bits/s (as tc counts: whole frames, Ethernet header included)
// and the TCP goodput in bits/s, both from the receiving socket's TCP_INFO. The wire rate counts the
// data segments that arrived (full-size in a bulk transfer) with their headers: the in-order byte count
// runs ahead of the link while a loss is repaired (buffered out-of-order data is delivered at once), and
// the veth's own byte counter undercounts (a GSO packet crosses it as one skb with one set of headers).
// Cross-checked against tbf's own counter: 1654-1658 segments and tbf packets per 2 s at 10 Mbit/s.
func tcpBulk(t testing.TB, l *lab, skip, window time.Duration) (wire, goodput float64) {
	t.Helper()
	var ln *net.TCPListener
	if err := l.b.Do(func() error {
		var err error
		ln, err = net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(addr(l.b, 7200)))
		return err
	}); err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	var c net.Conn
	if err := l.a.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr(l.b, 7200).String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	srv, err := ln.AcceptTCP()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 256<<10)
		for {
			if _, err := srv.Read(buf); err != nil {
				return
			}
		}
	}()
	stop := time.Now().Add(skip + window + 200*time.Millisecond)
	go func() {
		buf := make([]byte, 64<<10)
		for time.Now().Before(stop) {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
		c.Close()
	}()
	time.Sleep(skip)
	i0, t0 := tcpInfo(t, srv), time.Now()
	time.Sleep(window)
	i1, t1 := tcpInfo(t, srv), time.Now()
	secs := t1.Sub(t0).Seconds()
	mss := float64(tcpInfo(t, c.(*net.TCPConn)).Snd_mss) // the sender's segment size
	segs := float64(i1.Data_segs_in - i0.Data_segs_in)
	return segs * (mss + segOverhead) * 8 / secs, float64(i1.Bytes_received-i0.Bytes_received) * 8 / secs
}

func tcpInfo(t testing.TB, c *net.TCPConn) *unix.TCPInfo {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		t.Fatal(err)
	}
	if ierr != nil {
		t.Fatalf("TCP_INFO: %v", ierr)
	}
	return info
}
