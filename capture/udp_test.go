package capture

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/faultlab/faultlab/harness"
)

func itoa(i int) string { return strconv.Itoa(i) }

// drainUDP receives and discards datagrams on addr inside h until the test ends (so the sender's packets
// draw no ICMP errors).
func drainUDP(tb testing.TB, h harness.NetnsHost, addr netip.AddrPort) {
	tb.Helper()
	var pc net.PacketConn
	err := h.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp4", addr.String())
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	tb.Cleanup(func() { pc.Close() })
}

// blastUDP sends small datagrams from h to dst at rate per second for d, from two paced senders whose
// sockets are created inside h. It returns how many were sent and how long it took.
func blastUDP(tb testing.TB, h harness.NetnsHost, dst netip.AddrPort, rate int, d time.Duration) (int64, time.Duration) {
	tb.Helper()
	const senders = 2
	fds := make([]int, senders)
	err := h.Do(func() error {
		for i := range fds {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			fds[i] = fd
			if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: dst.Addr().As4(), Port: int(dst.Port())}); err != nil {
				return err
			}
		}
		return nil
	})
	defer func() {
		for _, fd := range fds {
			if fd > 0 {
				unix.Close(fd)
			}
		}
	}()
	if err != nil {
		tb.Fatal(err)
	}
	var sent atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	per := float64(rate) / senders
	payload := make([]byte, 18) // a 60-byte Ethernet frame
	for _, fd := range fds {
		wg.Go(func() {
			n := 0
			for {
				el := time.Since(start)
				if el >= d {
					break
				}
				for due := int(per * el.Seconds()); n < due; n++ {
					if _, err := unix.Write(fd, payload); err != nil && err != unix.ENOBUFS && err != unix.EAGAIN {
						return
					}
				}
				time.Sleep(200 * time.Microsecond)
			}
			sent.Add(int64(n))
		})
	}
	wg.Wait()
	return sent.Load(), time.Since(start)
}
