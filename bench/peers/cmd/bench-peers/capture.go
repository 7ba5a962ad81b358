package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/faultlab/faultlab/bench/peers"
	"github.com/faultlab/faultlab/capture"
	"github.com/faultlab/faultlab/harness"
)

// capStep is one capture tool at one packet rate.
type capStep struct {
	Tool     string        `json:"tool"`
	Target   float64       `json:"target_pps"`
	SentPPS  float64       `json:"sent_pps"` // what the sender reached
	Sent     int64         `json:"sent"`
	Received int64         `json:"received"` // packets the kernel handed to the capture (drops included)
	Dropped  int64         `json:"dropped"`
	Written  int64         `json:"written"` // packets in the file
	CPU      time.Duration `json:"cpu_ns"`
}

// CPUPerMillion is the capture's CPU time per million packets received.
func (s capStep) CPUPerMillion() time.Duration {
	if s.Received <= 0 {
		return 0
	}
	return time.Duration(float64(s.CPU) * 1e6 / float64(s.Received))
}

// captureBench compares the lab's afpacket capture with tcpdump on the client's eth0 while the client sends
// UDP datagrams to the backend, both with a 128-byte snaplen and a 64 MiB buffer.
type captureBench struct {
	client  harness.NetnsHost
	ns      string
	dst     netip.AddrPort // the backend's drain
	dur     time.Duration
	dir     string
	ringMiB int
}

// startDrain runs `bench-peers drain` in the namespace ns, receiving and discarding the datagrams sent to addr
// (so they draw no ICMP errors), in a process of its own: its CPU is not the capture's. stop ends it.
func startDrain(ctx context.Context, ns string, addr netip.AddrPort) (stop func() error, err error) {
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, self(), "drain", "-addr", addr.String())
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start drain: %w", err)
	}
	stop = func() error {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		return nil
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		stop()
		return nil, fmt.Errorf("drain on %s: %s", addr, stderr.String())
	}
	return stop, nil
}

// run climbs the packet-rate ladder, both tools at each rate (alternating who goes first), each until its
// first step with drops; it stops when the sender reaches less than 95% of a rate (the machine's limit).
func (b *captureBench) run(ctx context.Context, rates []float64, log func(string, ...any)) ([]capStep, error) {
	var steps []capStep
	stopped := map[string]bool{}
	tools := []string{"lab", "tcpdump"}
	for i, rate := range rates {
		limit := false
		for j := range tools {
			tool := tools[(i+j)%2]
			if stopped[tool] {
				continue
			}
			st, err := b.one(ctx, tool, rate)
			if err != nil {
				return steps, err
			}
			steps = append(steps, st)
			log("capture %-8s %7.0f pps: sent %7.0f pps, received %d, dropped %d, written %d, cpu/1M %s\n", tool,
				rate, st.SentPPS, st.Received, st.Dropped, st.Written, st.CPUPerMillion().Round(time.Millisecond))
			if st.Dropped > 0 {
				stopped[tool] = true
			}
			limit = limit || st.SentPPS < senderShare*rate
		}
		if limit || len(stopped) == len(tools) {
			break
		}
	}
	return steps, nil
}

func (b *captureBench) one(ctx context.Context, tool string, rate float64) (capStep, error) {
	path := filepath.Join(b.dir, fmt.Sprintf("capture-%s-%.0f.pcap", tool, rate))
	defer os.Remove(path) // only the counters matter here
	var st capStep
	var err error
	if tool == "lab" {
		st, err = b.lab(ctx, rate, path)
	} else {
		st, err = b.tcpdump(ctx, rate, path)
	}
	st.Tool, st.Target = tool, rate
	if err != nil {
		return st, fmt.Errorf("capture %s at %.0f pps: %w", tool, rate, err)
	}
	return st, nil
}

// blast sends rate datagrams per second for b.dur from the client (a child process in its namespace).
func (b *captureBench) blast(ctx context.Context, rate float64) (blastResult, error) {
	res, err := runIn(ctx, b.ns, self(), "blast", "-dst", b.dst.String(), "-rate", ftoa(rate), "-duration", b.dur.String())
	if err != nil {
		return blastResult{}, err
	}
	var br blastResult
	return br, json.Unmarshal(res.Stdout, &br)
}

// lab captures with the lab's afpacket capture in this process; its CPU is this process's over the capture
// (the sender is a child; nothing else of this process runs meanwhile).
func (b *captureBench) lab(ctx context.Context, rate float64, path string) (capStep, error) {
	c, err := capture.NewCapture(b.client, capture.LinkCapture{Iface: "eth0", Snaplen: 128, RingBytes: b.ringMiB << 20}, path)
	if err != nil {
		return capStep{}, err
	}
	cpu0 := selfCPU()
	if err := c.Start(ctx); err != nil {
		return capStep{}, err
	}
	br, berr := b.blast(ctx, rate)
	waitQuiet(func() int64 { return int64(c.Stats().Written) }, 100*time.Millisecond, 5*time.Second)
	serr := c.Stop()
	cs := c.Stats()
	st := capStep{Sent: br.Sent, SentPPS: float64(br.Sent) / br.Seconds, Received: int64(cs.Received),
		Dropped: int64(cs.Dropped), Written: int64(cs.Written), CPU: selfCPU() - cpu0}
	if berr != nil {
		return st, berr
	}
	return st, serr
}

// tcpdump captures with `tcpdump -i eth0 -s 128 -B <ring> -w FILE` in the client's namespace.
func (b *captureBench) tcpdump(ctx context.Context, rate float64, path string) (capStep, error) {
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", b.ns, "tcpdump", "-i", "eth0", "-nn", "-s", "128",
		"-B", strconv.Itoa(b.ringMiB<<10), "-w", path)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return capStep{}, err
	}
	if err := cmd.Start(); err != nil {
		return capStep{}, fmt.Errorf("start tcpdump: %w", err)
	}
	var stderr strings.Builder
	listening := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pipe)
		once := false
		for sc.Scan() {
			stderr.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "listening on") {
				once = true
				close(listening)
			}
		}
	}()
	select {
	case <-listening:
	case <-done:
		cmd.Wait()
		return capStep{}, fmt.Errorf("tcpdump exited: %s", stderr.String())
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return capStep{}, fmt.Errorf("tcpdump not listening after 10 s")
	}
	br, berr := b.blast(ctx, rate)
	// tcpdump lags behind the wire and, interrupted, does not drain its buffer: wait until its file stops
	// growing for longer than libpcap's 1 s block timeout (a ring block is handed over when full or after it),
	// then interrupt it.
	waitQuiet(func() int64 { return fileSize(path) }, 1500*time.Millisecond, 30*time.Second)
	cmd.Process.Signal(syscall.SIGINT)
	<-done
	werr := cmd.Wait()
	st := capStep{Sent: br.Sent, SentPPS: float64(br.Sent) / br.Seconds}
	if cmd.ProcessState != nil {
		st.CPU = usageOf(cmd.ProcessState, 0).CPU
	}
	os.WriteFile(strings.TrimSuffix(path, ".pcap")+".stderr", []byte(stderr.String()), 0o644)
	ts, perr := peers.ParseTcpdump(stderr.String())
	st.Received, st.Dropped, st.Written = ts.Received, ts.Dropped, ts.Captured
	if berr != nil {
		return st, berr
	}
	if perr != nil {
		return st, fmt.Errorf("%w (exit: %v)", perr, werr)
	}
	return st, nil
}

// profileLab captures at rate with a CPU profile of this process.
func (b *captureBench) profileLab(ctx context.Context, rate float64, prof string) error {
	return withCPUProfile(prof, func() error {
		_, err := b.one(ctx, "lab", rate)
		return err
	})
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

// waitQuiet waits until n() has not changed for quiet, at most max.
func waitQuiet(n func() int64, quiet, max time.Duration) {
	deadline := time.Now().Add(max)
	last := n()
	for time.Now().Before(deadline) {
		time.Sleep(quiet)
		now := n()
		if now == last {
			return
		}
		last = now
	}
}

// senderShare is the share of a capture step's rate its sender must reach for the step to test the rate.
const senderShare = 0.95
