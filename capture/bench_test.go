package capture

import (
	"context"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkSampler compares one socket-state sample with one `ip netns exec NS ss -tan` on a host holding
// 25,000 TIME_WAIT sockets. Metrics (medians of 15 alternating runs): ms/sample and cpu_ms/sample, ss_ms and
// ss_cpu_ms, x_cheaper_than_ss (wall time, target >= 5) and x_cpu_cheaper_than_ss.
func BenchmarkSampler(b *testing.B) {
	const tw = 25000
	l := newLab(b, map[string]string{"net.ipv4.ip_local_port_range": "1024 65535"})
	srv := netip.AddrPortFrom(l.server.Addrs()[0], 8080)
	startServer(b, l.server, srv)
	load := runClients(b, l.client, srv, 0, tw, 8, func(int) clientAction { return actClientCloses })
	if load.failed.Load() != 0 {
		b.Fatal(load.err())
	}
	ss, err := OpenSocketStates(l.client, StateSampler{})
	if err != nil {
		b.Fatal(err)
	}
	defer ss.Close()
	s, err := ss.Sample()
	if err != nil {
		b.Fatal(err)
	}
	if s.States.TimeWait < tw*99/100 {
		b.Fatalf("only %d TIME_WAIT sockets", s.States.TimeWait)
	}
	// ss and the sampler take turns, so both meet the same load from whatever else runs on the machine;
	// medians of wall time and CPU time (the sampler's process, ss's children) are compared.
	const rounds = 15
	var ssWall, ssCPU, ourWall, ourCPU []time.Duration
	for b.Loop() {
		for range rounds {
			cmd := exec.Command("ip", "netns", "exec", nsName(l.client), "ss", "-tan")
			t0 := time.Now()
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
			ssWall = append(ssWall, time.Since(t0))
			ssCPU = append(ssCPU, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
			c0, t1 := cpuTime(b), time.Now()
			if _, err := ss.Sample(); err != nil {
				b.Fatal(err)
			}
			ourWall = append(ourWall, time.Since(t1))
			ourCPU = append(ourCPU, cpuTime(b)-c0)
		}
	}
	b.ReportMetric(ms(median(ourWall)), "ms/sample")
	b.ReportMetric(ms(median(ourCPU)), "cpu_ms/sample")
	b.ReportMetric(ms(median(ssWall)), "ss_ms")
	b.ReportMetric(ms(median(ssCPU)), "ss_cpu_ms")
	b.ReportMetric(float64(median(ssWall))/float64(median(ourWall)), "x_cheaper_than_ss")
	b.ReportMetric(float64(median(ssCPU))/float64(max(median(ourCPU), 1)), "x_cpu_cheaper_than_ss")
	b.ReportMetric(float64(s.States.TimeWait), "time_wait")
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// cpuTime is the CPU time (user and system) the test process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCaptureDrops sends UDP datagrams from the client to the server at fixed rates for 2 s while the
// capture records the client's eth0, and reports drops against the packet rate (target: none at 100k/s).
func BenchmarkCaptureDrops(b *testing.B) {
	l := newLab(b, nil)
	dst := netip.AddrPortFrom(l.server.Addrs()[0], 9000)
	drainUDP(b, l.server, dst)
	for _, rate := range []int{50000, 100000, 150000} {
		b.Run("pps="+itoa(rate), func(b *testing.B) {
			for b.Loop() {
				path := filepath.Join(b.TempDir(), "udp.pcap")
				c, err := NewCapture(l.client, LinkCapture{Iface: "eth0", Snaplen: 128}, path)
				if err != nil {
					b.Fatal(err)
				}
				if err := c.Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				sent, took := blastUDP(b, l.client, dst, rate, 2*time.Second)
				waitQuiet(c, 100*time.Millisecond, 3*time.Second)
				if err := c.Stop(); err != nil {
					b.Fatal(err)
				}
				st := c.Stats()
				b.ReportMetric(float64(sent)/took.Seconds(), "sent_pps")
				b.ReportMetric(float64(st.Received), "received")
				b.ReportMetric(float64(st.Dropped), "dropped")
				b.ReportMetric(float64(st.Dropped)/float64(max(st.Received, 1)), "drop_ratio")
				b.ReportMetric(float64(st.Written), "written")
			}
		})
	}
}
