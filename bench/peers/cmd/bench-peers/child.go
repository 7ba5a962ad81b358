package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/faultlab/faultlab/bench/peers"
	"github.com/faultlab/faultlab/loadgen"
	"github.com/faultlab/faultlab/results"
)

// The children: bench-peers runs its own binary, inside the client's namespace (`ip netns exec`, as the
// peers), as the lab's load generator and as the UDP sender of the capture ladder, so that each generator's
// CPU and peak memory are its own process's (getrusage of a child) and the parent's are the probes'.

// childLoadgen is `bench-peers loadgen`: the lab's loadgen (the http workload of a cell: GET / HTTP/1.0 on a new
// connection per attempt) at one rate; prints a peers.GenStep as JSON.
func childLoadgen(args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	target := fs.String("target", "", "address:port of the target")
	rate := fs.Float64("rate", 0, "connections per second")
	dur := fs.Duration("duration", 5*time.Second, "measured phase")
	timeout := fs.Duration("timeout", 5*time.Second, "per attempt")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run here")
	memprofile := fs.String("memprofile", "", "write the run's allocations profile here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dst, err := netip.ParseAddrPort(*target)
	if err != nil {
		return fmt.Errorf("loadgen: -target: %w", err)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *memprofile != "" {
		runtime.MemProfileRate = 4096 // every 4 KB allocated, not 512 KB: a run of a few MB
	}
	// Latencies of the measured attempts, for the p99 the peers report (the sink is called from one
	// goroutine at a time). The records measure from the intended start, so that a late start counts; vegeta
	// and httperf measure from the actual start, and so does this figure.
	lat := make([]int64, 0, int(*rate*dur.Seconds())+16)
	cfg := loadgen.Config{Cell: "bench-peers", Rate: *rate, Duration: *dur, Timeout: *timeout, Target: dst}
	d := &loadgen.Dialer{Socket: loadgen.LocalSocket, Timeout: *timeout}
	sum, err := loadgen.Run(context.Background(), cfg, loadgen.HTTP10{}, d, func(r *results.Record) {
		if r.Outcome == results.OutcomeOK {
			lat = append(lat, r.Total-(r.Start-r.Intended))
		}
	})
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	if *memprofile != "" {
		if err := writeAllocs(*memprofile); err != nil {
			return err
		}
	}
	st := peers.GenStep{Tool: "lab", Target: *rate, Attempts: sum.Launched, Achieved: sum.Achieved,
		Failed: sum.Launched - sum.OK, P99: p99(lat), LagP99: sum.LagP99}
	return json.NewEncoder(os.Stdout).Encode(st)
}

func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
}

// p99 is the nearest-rank 99th percentile of the successful attempts' latencies (-1 without any).
func p99(ns []int64) time.Duration {
	if len(ns) == 0 {
		return -1
	}
	slices.Sort(ns)
	i := (len(ns)*99+99)/100 - 1
	return time.Duration(ns[min(i, len(ns)-1)])
}

// childDrain is `bench-peers drain`: receives and discards UDP datagrams on -addr, printing "ready" once it
// listens, until SIGINT or SIGTERM.
func childDrain(args []string) error {
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	addr := fs.String("addr", "", "address:port to receive on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp4", *addr)
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		pc.Close()
	}()
	fmt.Println("ready")
	buf := make([]byte, 2048)
	for {
		if _, _, err := pc.ReadFrom(buf); err != nil {
			return nil
		}
	}
}

// blastResult is what `bench-peers blast` prints.
type blastResult struct {
	Sent    int64   `json:"sent"`
	Seconds float64 `json:"seconds"`
}

// childBlast is `bench-peers blast`: small UDP datagrams (60-byte frames) to -dst at -rate per second for
// -duration, from two paced senders (the capture ladder's traffic).
func childBlast(args []string) error {
	fs := flag.NewFlagSet("blast", flag.ContinueOnError)
	target := fs.String("dst", "", "address:port to send to")
	rate := fs.Float64("rate", 0, "datagrams per second")
	dur := fs.Duration("duration", 2*time.Second, "how long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dst, err := netip.ParseAddrPort(*target)
	if err != nil || !dst.Addr().Is4() || !(*rate > 0) {
		return fmt.Errorf("blast: want -dst IPv4:port and -rate > 0 (%v)", err)
	}
	const senders = 2
	type res struct {
		n   int64
		err error
	}
	out := make(chan res, senders)
	start := time.Now()
	for range senders {
		go func() {
			n, err := paceUDP(dst, *rate/senders, start, *dur)
			out <- res{n, err}
		}()
	}
	var sent int64
	var errs []error
	for range senders {
		r := <-out
		sent += r.n
		errs = append(errs, r.err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("blast: %w", err)
	}
	return json.NewEncoder(os.Stdout).Encode(blastResult{Sent: sent, Seconds: time.Since(start).Seconds()})
}

// paceUDP sends rate datagrams per second from one connected socket, catching up every 200 µs, in batches
// of up to sendBatch datagrams per sendmmsg(2): the sender's syscalls are not what limits the ladder.
func paceUDP(dst netip.AddrPort, rate float64, start time.Time, d time.Duration) (int64, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: dst.Addr().As4(), Port: int(dst.Port())}); err != nil {
		return 0, err
	}
	payload := make([]byte, 18) // 14 + 20 + 8 + 18 = a 60-byte Ethernet frame
	iov := unix.Iovec{Base: &payload[0]}
	iov.SetLen(len(payload))
	var msgs [sendBatch]mmsghdr
	for i := range msgs {
		msgs[i].hdr.Iov = &iov
		msgs[i].hdr.SetIovlen(1)
	}
	var n int64
	for {
		el := time.Since(start)
		if el >= d {
			return n, nil
		}
		for due := int64(rate * el.Seconds()); n < due; {
			k, err := sendmmsg(fd, msgs[:min(due-n, sendBatch)])
			if err != nil && err != unix.ENOBUFS && err != unix.EAGAIN && err != unix.ECONNREFUSED {
				return n, err
			}
			n += int64(max(k, 1)) // a refused or full batch counts its first datagram as sent, as write(2) did
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// sendBatch is the most datagrams paceUDP hands the kernel in one call.
const sendBatch = 64

// mmsghdr is struct mmsghdr (x/sys/unix has the syscall number, not the call).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// sendmmsg sends msgs on the connected socket fd and returns how many went.
func sendmmsg(fd int, msgs []mmsghdr) (int, error) {
	r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)),
		0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}
