package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/faultlab/faultlab/bench/peers"
	"github.com/faultlab/faultlab/capture"
	"github.com/faultlab/faultlab/harness"
)

var loadPeers = []string{"vegeta", "httperf"}

// loadPart: the rate ladder, then the highest rate each held, and CPU, latency and memory at the highest
// rate every generator held (the lowest rate of the ladder when one held none).
func loadPart(ctx context.Context, c config, rep *report, ns string, lb netip.AddrPort) error {
	b := &loadBench{ns: ns, target: lb, step: c.step, timeout: c.timeout, dir: filepath.Join(rep.dir, "load"),
		vegeta: c.vegeta}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return err
	}
	steps, err := b.run(ctx, c.loadStart, c.loadInc, c.loadMax, rep.log)
	rep.raw["load"] = steps
	if err != nil {
		return err
	}
	held := map[string]float64{}
	for _, p := range loadPeers {
		held[p] = peers.HighestHeld(steps, p)
	}
	labHeld := peers.HighestHeld(steps, "lab")
	name, best, _ := peers.BestPeer(held, true)
	note := fmt.Sprintf("ladder %.0f, %.0f, ... /s, %s a step; held: >= 99%% of the rate issued, <= 1%% failed; "+
		"vegeta %.0f, httperf %.0f", c.loadStart, c.loadStart+c.loadInc, c.step, held["vegeta"], held["httperf"])
	for _, s := range steps {
		if s.Hung {
			note += fmt.Sprintf("; %s did not finish its %.0f/s step (stopped after %s)", s.Tool, s.Target,
				c.step+c.timeout+20*time.Second)
		}
	}
	if labHeld >= c.loadMax {
		note += "; the lab held the ladder's top: its ceiling is higher"
	}
	firstMiss := labHeld + c.loadInc
	rep.add(ctx, peers.Ratio{What: "load: highest rate held", Unit: "conn/s", Lab: labHeld, Peer: best, PeerBy: name,
		HigherIsBetter: true, Note: note}, func(path string) error { return b.profile(ctx, "cpuprofile", firstMiss, path) })

	common := c.loadStart
	for r := c.loadStart; r <= c.loadMax; r += c.loadInc {
		if r <= labHeld && r <= held["vegeta"] && r <= held["httperf"] {
			common = r
		}
	}
	at := map[string]peers.GenStep{}
	for _, s := range steps {
		if s.Target == common {
			at[s.Tool] = s
		}
	}
	figure := func(f func(peers.GenStep) float64) (float64, map[string]float64) {
		m := map[string]float64{}
		for _, p := range loadPeers {
			if s, ok := at[p]; ok {
				m[p] = f(s)
			}
		}
		if s, ok := at["lab"]; ok {
			return f(s), m
		}
		return 0, m
	}
	where := fmt.Sprintf("at %.0f conn/s", common)
	rows := []struct {
		what, unit string
		f          func(peers.GenStep) float64
		note       string
		profile    string
	}{
		{"load: generator CPU per 1,000 connections", "ms", func(s peers.GenStep) float64 { return ms(s.CPUPer1000()) },
			where + ", user+system time of the generator's process (getrusage of the child)", "cpuprofile"},
		{"load: latency p99", "ms", func(s peers.GenStep) float64 { return ms(s.P99) },
			where + ", from the attempt's actual start to the end of the response (the lab's records count from the " +
				"intended start, lag included: not here); httperf's from its 1 ms histogram (bin's upper edge)",
			"cpuprofile"},
		{"load: generator peak RSS", "MB", func(s peers.GenStep) float64 { return float64(s.MaxRSS) / 1024 },
			where + ", " + c.step.String() + " (the child's ru_maxrss); its profile: allocations", "memprofile"},
	}
	for _, row := range rows {
		lab, m := figure(row.f)
		name, best, _ := peers.BestPeer(m, false)
		rep.add(ctx, peers.Ratio{What: row.what, Unit: row.unit, Lab: lab, Peer: best, PeerBy: name, Note: row.note},
			func(path string) error { return b.profile(ctx, row.profile, common, path) })
	}
	return nil
}

// capturePart: the packet-rate ladder, the highest rate each tool captured with no drop, and CPU per million
// packets at the highest rate both captured with no drop.
func capturePart(ctx context.Context, c config, rep *report, client harness.NetnsHost, ns string,
	backend harness.NetnsHost) error {
	dst := netip.AddrPortFrom(backend.Addrs()[0], 9000)
	stop, err := startDrain(ctx, filepath.Base(backend.NetnsPath()), dst)
	if err != nil {
		return err
	}
	defer stop()
	b := &captureBench{client: client, ns: ns, dst: dst, dur: c.ppsDur, dir: rep.dir, ringMiB: 64}
	steps, err := b.run(ctx, c.pps, rep.log)
	rep.raw["capture"] = steps
	if err != nil {
		return err
	}
	// The highest rate of the ladder each captured with no drop, every lower one too, counting only the steps
	// whose sender reached 95% of the rate (one that fell short did not test the rate: a capture that costs
	// the sender CPU shows there).
	clean := map[string]capStep{}
	reached := map[string]float64{}
	stopped := map[string]bool{}
	for _, s := range steps {
		if s.Dropped > 0 || s.Received == 0 || s.SentPPS < senderShare*s.Target {
			stopped[s.Tool] = true
		}
		if !stopped[s.Tool] {
			clean[s.Tool] = s
		}
		reached[s.Tool] = max(reached[s.Tool], s.SentPPS)
	}
	lab, td := clean["lab"], clean["tcpdump"]
	note := fmt.Sprintf("ladder of UDP 60-byte frames on the client's eth0, %s a step, snaplen 128, a 64 MiB "+
		"buffer each; a step counts when its sender reached %.0f%% of the rate (the ladder ends at the first "+
		"that did not); the sender reached %.0f pps at most beside the lab's capture, %.0f beside tcpdump; "+
		"drops, lab: %s; tcpdump: %s", c.ppsDur, 100*senderShare, reached["lab"], reached["tcpdump"],
		dropsOf(steps, "lab"), dropsOf(steps, "tcpdump"))
	rep.add(ctx, peers.Ratio{What: "capture: highest packet rate with 0 drops", Unit: "pps", Lab: lab.Target,
		Peer: td.Target, PeerBy: "tcpdump", HigherIsBetter: true, Note: note},
		func(path string) error { return b.profileLab(ctx, nextRate(c.pps, lab.Target), path) })
	common := min(lab.Target, td.Target)
	var labCPU, tdCPU float64
	for _, s := range steps {
		if s.Target == common && s.Tool == "lab" {
			labCPU = ms(s.CPUPerMillion())
		}
		if s.Target == common && s.Tool == "tcpdump" {
			tdCPU = ms(s.CPUPerMillion())
		}
	}
	rep.add(ctx, peers.Ratio{What: "capture: CPU per million packets", Unit: "ms", Lab: labCPU, Peer: tdCPU,
		PeerBy: "tcpdump", Note: fmt.Sprintf("at %.0f pps; the lab's capture runs in bench-peers (getrusage; the "+
			"sender and the receiver are child processes), tcpdump is a child", common)},
		func(path string) error { return b.profileLab(ctx, common, path) })
	return nil
}

func dropsOf(steps []capStep, tool string) string {
	s := ""
	for _, st := range steps {
		if st.Tool == tool {
			if s != "" {
				s += ", "
			}
			s += fmt.Sprintf("%d at %.0fk", st.Dropped, st.Target/1000)
		}
	}
	return s
}

// nextRate is the ladder's rate after r (r itself when it is the last).
func nextRate(rates []float64, r float64) float64 {
	for _, x := range rates {
		if x > r {
			return x
		}
	}
	return r
}

func samplerPart(ctx context.Context, c config, rep *report, host harness.NetnsHost, ns string) error {
	r, err := samplerBench(ctx, host, ns, rep.dir, c.timeWait, c.rounds)
	rep.raw["sampler"] = r
	if err != nil {
		return err
	}
	rep.log("sampler: %.1f ms (cpu %.1f ms) vs ss -tan %.1f ms (cpu %.1f ms), TIME_WAIT %d / %d\n", r.WallMS, r.CPUMS,
		r.SSWallMS, r.SSCPUMS, r.TimeWait, r.SSTimeWait)
	prof := func(path string) error {
		ss, err := capture.OpenSocketStates(host, capture.StateSampler{})
		if err != nil {
			return err
		}
		defer ss.Close()
		return withCPUProfile(path, func() error {
			for range 50 {
				if _, err := ss.Sample(); err != nil {
					return err
				}
			}
			return nil
		})
	}
	note := fmt.Sprintf("%d TIME_WAIT sockets made in the backend's namespace (it held %d by the sampler's count, "+
		"%d by ss's, with the load's), medians of %d alternating runs; ss -tan through ip netns exec", c.timeWait,
		r.TimeWait, r.SSTimeWait, c.rounds)
	rep.add(ctx, peers.Ratio{What: "socket states: time per sample", Unit: "ms", Lab: r.WallMS, Peer: r.SSWallMS,
		PeerBy: "ss -tan", Note: note}, prof)
	rep.add(ctx, peers.Ratio{What: "socket states: CPU per sample", Unit: "ms", Lab: r.CPUMS, Peer: r.SSCPUMS,
		PeerBy: "ss -tan", Note: "same samples; the sampler's CPU is bench-peers' own (getrusage), ss's its child's"}, prof)
	return nil
}

func topologyPart(ctx context.Context, c config, rep *report, ns string) error {
	r, err := topoBench(ctx, ns, c.mininet, filepath.Join(rep.dir, "topology"), c.topoRound)
	rep.raw["topology"] = r
	if err != nil {
		return err
	}
	rep.log("topology: netns %.0f ms up, %.0f ms down; mininet %.0f ms up, %.0f ms down %s\n", r.SetupMS,
		r.TeardownMS, r.MNSetupMS, r.MNTeardownMS, r.MNError)
	note := fmt.Sprintf("3 hosts on one switch/router, medians of %d; Mininet (LinuxBridge, no controller) runs "+
		"inside a lab namespace", c.topoRound)
	if r.MNError != "" {
		note = "Mininet could not run here: " + r.MNError
	}
	prof := func(path string) error {
		return withCPUProfile(path, func() error {
			_, _, err := netnsStar(ctx, filepath.Join(rep.dir, "topology", "profile"))
			return err
		})
	}
	rep.add(ctx, peers.Ratio{What: "topology: 3-host star setup", Unit: "ms", Lab: r.SetupMS, Peer: r.MNSetupMS,
		PeerBy: "Mininet", Note: note}, prof)
	rep.add(ctx, peers.Ratio{What: "topology: 3-host star teardown", Unit: "ms", Lab: r.TeardownMS,
		Peer: r.MNTeardownMS, PeerBy: "Mininet", Note: "same rounds"}, prof)
	return nil
}

func analysisPart(ctx context.Context, c config, rep *report, pcap string) error {
	if pcap == "" {
		return fmt.Errorf("analysis: no pcap recorded")
	}
	a, err := analysisBench(ctx, pcap, 3)
	rep.raw["analysis"] = a
	if err != nil {
		return err
	}
	rep.log("analysis: %d packets, lab %.2f s, tshark %.2f s\n", a.Packets, a.Lab.Seconds(), a.Tshark.Seconds())
	prof := func(path string) error {
		return withCPUProfile(path, func() error {
			_, err := capture.AnalyseFile(pcap, capture.Options{})
			return err
		})
	}
	rep.add(ctx, peers.Ratio{What: "pcap analysis: packets per second", Unit: "pkt/s", Lab: a.LabPPS,
		Peer: a.TsharkPPS, PeerBy: "tshark -z conv,tcp", HigherIsBetter: true,
		Note: fmt.Sprintf("one pcap of %d packets (the lab's generator at 3,000 conn/s for 4 s), medians of 3 "+
			"alternating runs, wall time", a.Packets)}, prof)
	os.Remove(pcap)
	return nil
}

// memoryLoadRE finds memory.sh's load lines (achieved rate, lag max, most attempts in flight).
var memoryLoadRE = regexp.MustCompile(`achieved: [^;\n]*`)

func memoryPart(ctx context.Context, rep *report) error {
	rep.log("memory: bench/memory.sh (about 4 minutes)\n")
	m, err := memoryBench(ctx)
	rep.raw["memory"] = m
	if m.LongAttempts == 0 {
		return err
	}
	per := float64(m.LongMB) / (float64(m.LongAttempts) / 1e6)
	note := fmt.Sprintf("bench/memory.sh: faultlab run's peak RSS, %d MB at %d attempts, %d MB at %d; no peer runs "+
		"a whole cell", m.QuickMB, m.QuickAttempts, m.LongMB, m.LongAttempts)
	if err != nil {
		note += "; memory.sh failed (not flat): " + strings.Join(memoryLoadRE.FindAllString(m.Output, -1), "; ")
	}
	rep.add(ctx, peers.Ratio{What: "memory: peak RSS per million attempts", Unit: "MB", Lab: per, Note: note}, nil)
	return nil
}
