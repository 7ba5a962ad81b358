package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"time"

	"github.com/faultlab/faultlab/bench/peers"
	"github.com/faultlab/faultlab/capture"
	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/netns"
)

// withCPUProfile runs fn with this process's CPU profile written to path.
func withCPUProfile(path string, fn func() error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	err = fn()
	pprof.StopCPUProfile()
	return err
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// analysisResult compares the lab's pcap analyser with tshark on one file.
type analysisResult struct {
	Packets      uint64        `json:"packets"`
	Lab, Tshark  time.Duration `json:"-"`
	LabPPS       float64       `json:"lab_pps"`
	TsharkPPS    float64       `json:"tshark_pps"`
	LabSeconds   float64       `json:"lab_s"`
	TsharkSecond float64       `json:"tshark_s"`
}

// analysisBench times capture.AnalyseFile and `tshark -r FILE -q -z conv,tcp` (a per-connection summary,
// the nearest of tshark's outputs to the analyser's) on the same pcap, rounds times each, alternating;
// medians of wall time.
func analysisBench(ctx context.Context, path string, rounds int) (analysisResult, error) {
	var lab, ts []time.Duration
	var packets uint64
	for range rounds {
		t0 := time.Now()
		res, err := capture.AnalyseFile(path, capture.Options{})
		if err != nil {
			return analysisResult{}, err
		}
		lab = append(lab, time.Since(t0))
		packets = res.Records
		r, err := runIn(ctx, "", "tshark", "-r", path, "-q", "-z", "conv,tcp")
		if err != nil {
			return analysisResult{}, err
		}
		ts = append(ts, r.Wall)
	}
	a := analysisResult{Packets: packets, Lab: median(lab), Tshark: median(ts)}
	a.LabPPS, a.TsharkPPS = float64(packets)/a.Lab.Seconds(), float64(packets)/a.Tshark.Seconds()
	a.LabSeconds, a.TsharkSecond = a.Lab.Seconds(), a.Tshark.Seconds()
	return a, nil
}

// samplerResult compares one socket-state sample with one `ss -tan` at many TIME_WAIT sockets.
type samplerResult struct {
	TimeWait   int           `json:"time_wait"`    // the sampler's count
	SSTimeWait int           `json:"ss_time_wait"` // ss's
	Wall, CPU  time.Duration `json:"-"`
	SSWall     time.Duration `json:"-"`
	SSCPU      time.Duration `json:"-"`
	WallMS     float64       `json:"ms"`
	CPUMS      float64       `json:"cpu_ms"`
	SSWallMS   float64       `json:"ss_ms"`
	SSCPUMS    float64       `json:"ss_cpu_ms"`
}

// makeTimeWait leaves n TIME_WAIT sockets in h's namespace: n connections from h to a listener on h's own lab
// address that h closes first (the listener closes once it reads the EOF). Not over loopback: with
// net.ipv4.tcp_tw_reuse at its default (2, loopback only) no new connection reuses the port of one in
// TIME_WAIT, so all n stay. h's port range must hold n.
func makeTimeWait(h harness.NetnsHost, n int) error {
	addr := netip.AddrPortFrom(h.Addrs()[0], 9100)
	var ln net.Listener
	if err := h.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", addr.String())
		return err
	}); err != nil {
		return fmt.Errorf("listen in %s: %w", h.Name(), err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	return h.Do(func() error {
		for i := range n {
			c, err := net.Dial("tcp4", addr.String())
			if err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
			c.Close()
		}
		return nil
	})
}

// samplerBench fills h with tw TIME_WAIT sockets, then takes rounds samples with the lab's sampler and rounds
// `ss -tan` runs (child processes in the namespace), alternating; medians of wall and CPU time.
// The first ss output is kept in dir.
func samplerBench(ctx context.Context, h harness.NetnsHost, ns, dir string, tw, rounds int) (samplerResult, error) {
	if err := makeTimeWait(h, tw); err != nil {
		return samplerResult{}, err
	}
	ss, err := capture.OpenSocketStates(h, capture.StateSampler{})
	if err != nil {
		return samplerResult{}, err
	}
	defer ss.Close()
	var r samplerResult
	var wall, cpu, sswall, sscpu []time.Duration
	for range rounds {
		out, err := runIn(ctx, ns, "ss", "-tan")
		if err != nil {
			return r, err
		}
		counts, err := peers.CountSS(string(out.Stdout))
		if err != nil {
			return r, err
		}
		if len(wall) == 0 {
			os.WriteFile(filepath.Join(dir, "ss-tan.txt"), out.Stdout, 0o644)
		}
		r.SSTimeWait = counts["TIME-WAIT"]
		sswall, sscpu = append(sswall, out.Wall), append(sscpu, out.CPU)
		c0, t0 := selfCPU(), time.Now()
		s, err := ss.Sample()
		if err != nil {
			return r, err
		}
		wall, cpu = append(wall, time.Since(t0)), append(cpu, selfCPU()-c0)
		r.TimeWait = s.States.TimeWait
	}
	r.Wall, r.CPU, r.SSWall, r.SSCPU = median(wall), median(cpu), median(sswall), median(sscpu)
	r.WallMS, r.CPUMS, r.SSWallMS, r.SSCPUMS = ms(r.Wall), ms(r.CPU), ms(r.SSWall), ms(r.SSCPU)
	if r.TimeWait < tw*98/100 || r.SSTimeWait < tw*98/100 {
		return r, fmt.Errorf("sampler saw %d TIME_WAIT sockets and ss %d, want about %d", r.TimeWait, r.SSTimeWait, tw)
	}
	return r, nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// topoResult compares building and tearing down a 3-host star.
type topoResult struct {
	Setup, Teardown     time.Duration `json:"-"`
	MNSetup, MNTeardown time.Duration `json:"-"`
	SetupMS             float64       `json:"setup_ms"`
	TeardownMS          float64       `json:"teardown_ms"`
	MNSetupMS           float64       `json:"mininet_setup_ms"`
	MNTeardownMS        float64       `json:"mininet_teardown_ms"`
	MNError             string        `json:"mininet_error,omitempty"`
}

// netnsStar builds and tears down a 3-host star with the netns provider (hosts around a router namespace).
func netnsStar(ctx context.Context, dir string) (setup, teardown time.Duration, err error) {
	b := make([]byte, 4)
	rand.Read(b)
	topo := harness.Topology{Hosts: []harness.HostSpec{{Name: "h1"}, {Name: "h2"}, {Name: "h3"}}}
	t0 := time.Now()
	env, err := netns.New().Build(ctx, harness.PrefixBase+"bp"+hex.EncodeToString(b), topo, dir)
	setup = time.Since(t0)
	if env == nil {
		return 0, 0, fmt.Errorf("netns star: %w", err)
	}
	t1 := time.Now()
	cerr := env.Close()
	teardown = time.Since(t1)
	if err != nil {
		return 0, 0, fmt.Errorf("netns star: %w", err)
	}
	return setup, teardown, cerr
}

// topoBench times rounds 3-host stars with the netns provider and with Mininet (its script run inside the
// namespace ns, so its switch and links live there), medians.
func topoBench(ctx context.Context, ns, script, dir string, rounds int) (topoResult, error) {
	var r topoResult
	var su, td []time.Duration
	for i := range rounds {
		s, t, err := netnsStar(ctx, filepath.Join(dir, "star"+strconv.Itoa(i)))
		if err != nil {
			return r, err
		}
		su, td = append(su, s), append(td, t)
	}
	r.Setup, r.Teardown = median(su), median(td)
	r.SetupMS, r.TeardownMS = ms(r.Setup), ms(r.Teardown)
	out, err := runIn(ctx, ns, "/usr/bin/python3", script, strconv.Itoa(rounds))
	if err != nil {
		r.MNError = err.Error()
		return r, nil // reported in the table: Mininet cannot run here
	}
	su, td = nil, nil
	dec := json.NewDecoder(bytes.NewReader(out.Stdout))
	for {
		var line struct {
			Setup    float64 `json:"setup_s"`
			Teardown float64 `json:"teardown_s"`
		}
		if err := dec.Decode(&line); err == io.EOF {
			break
		} else if err != nil {
			return r, fmt.Errorf("mininet script output: %w", err)
		}
		su = append(su, time.Duration(line.Setup*float64(time.Second)))
		td = append(td, time.Duration(line.Teardown*float64(time.Second)))
	}
	if len(su) == 0 {
		r.MNError = "mininet script printed no round: " + clipOut(out.Stderr)
		return r, nil
	}
	r.MNSetup, r.MNTeardown = median(su), median(td)
	r.MNSetupMS, r.MNTeardownMS = ms(r.MNSetup), ms(r.MNTeardown)
	return r, nil
}

// memoryResult is bench/memory.sh's two runs of `faultlab run` (peak RSS, load generator included).
type memoryResult struct {
	QuickAttempts, LongAttempts int64
	QuickMB, LongMB             int64
	Output                      string
}

var memoryLineRE = regexp.MustCompile(`(?m)^(quick|long): +(\d+) attempts, peak RSS (\d+) MB`)

// memoryBench runs bench/memory.sh (reused as it is) and reads its two lines.
func memoryBench(ctx context.Context) (memoryResult, error) {
	out, err := runIn(ctx, "", "bash", "bench/memory.sh")
	r := memoryResult{Output: string(out.Stdout) + string(out.Stderr)}
	for _, m := range memoryLineRE.FindAllStringSubmatch(r.Output, -1) {
		a, _ := strconv.ParseInt(m[2], 10, 64)
		mb, _ := strconv.ParseInt(m[3], 10, 64)
		if m[1] == "quick" {
			r.QuickAttempts, r.QuickMB = a, mb
		} else {
			r.LongAttempts, r.LongMB = a, mb
		}
	}
	if r.LongAttempts == 0 {
		return r, fmt.Errorf("bench/memory.sh printed no long run (%v): %s", err, clipOut([]byte(r.Output)))
	}
	return r, err // memory.sh fails when memory is not flat: still report what it measured
}
