package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/services"
	"github.com/faultlab/faultlab/results"
	"golang.org/x/sys/unix"
)

// startProxy starts nginx on the backend and haproxy (with strategy) on the proxy, both on port 80.
func startProxy(t *testing.T, lab testLab, strategy string) *services.HAProxy {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := services.NewNginx(lab.backend, t.TempDir(), at(lab.backend, 80), map[string]string{"worker_processes": "2"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	x, err := services.NewHAProxy(lab.proxy, t.TempDir(), services.HAProxyConfig{Name: "proxy",
		Bind: at(lab.proxy, 80), Servers: []netip.AddrPort{at(lab.backend, 80)}, Strategy: strategy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = x.Stop(context.Background()) })
	if err := x.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return x
}

func TestReloadStormHAProxy(t *testing.T) {
	for _, strategy := range []string{services.StrategyLegacy, services.StrategyMasterWorker} {
		t.Run(strategy, func(t *testing.T) {
			lab := newLab(t)
			x := startProxy(t, lab, strategy)
			sd, err := NewSynDrop(lab.proxy, lab.prefix, 80, 10*time.Millisecond, 20*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sd.Close() })
			var evs []results.ReloadEvent
			s := &ReloadStorm{Target: x, Interval: 150 * time.Millisecond, Jitter: 50 * time.Millisecond, Seed: 1,
				Around: sd, Sink: func(ev results.ReloadEvent) { evs = append(evs, ev) }}
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			if err := s.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if len(evs) < 3 {
				t.Fatalf("%d reloads", len(evs))
			}
			for i, ev := range evs {
				if !ev.OK || ev.Strategy != strategy || ev.Procs < 1 || ev.End < ev.Start {
					t.Errorf("reload %d: %+v", i, ev)
				}
			}
			if _, err := sd.Drops(); err != nil {
				t.Error(err)
			}
			if err := x.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := x.Procs(); n != 0 {
				t.Errorf("Procs after Stop = %d", n)
			}
		})
	}
}

// TestReloadPathology reproduces pathology 1 (opt-in, FAULTLAB_PATHOLOGY=1; FAULTLAB_PATHOLOGY_RATE and
// FAULTLAB_PATHOLOGY_DURATION override 2000/s for 10 s per cell): HTTP/1.0 load
// from the client through haproxy while it is reloaded every 250 ms. Legacy reloads should fail some
// connections; socket transfer and master-worker none.
func TestReloadPathology(t *testing.T) {
	if os.Getenv("FAULTLAB_PATHOLOGY") != "1" {
		t.Skip("opt-in: FAULTLAB_PATHOLOGY=1")
	}
	cells := []struct {
		name, strategy string
		synDrop        bool
		sysctls        map[string]string
	}{
		{"legacy", services.StrategyLegacy, false, nil},
		{"legacy-st", services.StrategyLegacyST, false, nil},
		{"socket-transfer", services.StrategySocketTransfer, false, nil},
		{"master-worker", services.StrategyMasterWorker, false, nil},
		{"legacy+tcp_migrate_req", services.StrategyLegacy, false, map[string]string{"net.ipv4.tcp_migrate_req": "1"}},
		{"legacy+syn-drop", services.StrategyLegacy, true, nil},
	}
	rate, dur := 2000.0, 10*time.Second
	if v, err := strconv.ParseFloat(os.Getenv("FAULTLAB_PATHOLOGY_RATE"), 64); err == nil && v > 0 {
		rate = v
	}
	if v, err := time.ParseDuration(os.Getenv("FAULTLAB_PATHOLOGY_DURATION")); err == nil && v > 0 {
		dur = v
	}
	for _, c := range cells {
		t.Run(c.name, func(t *testing.T) {
			lab := newLab(t)
			if c.sysctls != nil {
				if _, err := harness.ApplySysctls(lab.proxy, c.sysctls); err != nil {
					t.Fatal(err)
				}
			}
			x := startProxy(t, lab, c.strategy)
			s := &ReloadStorm{Target: x, Interval: 250 * time.Millisecond, Seed: 1}
			var sd *SynDrop
			if c.synDrop {
				var err error
				if sd, err = NewSynDrop(lab.proxy, lab.prefix, 80, 20*time.Millisecond, 100*time.Millisecond); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = sd.Close() })
				s.Around = sd
			}
			var reloads, reloadErrs int
			var reloadTime time.Duration
			var reloadStarts []time.Time
			s.Epoch = time.Now()
			s.Sink = func(ev results.ReloadEvent) {
				reloads++
				reloadStarts = append(reloadStarts, s.Epoch.Add(time.Duration(ev.Start)))
				reloadTime += time.Duration(ev.End - ev.Start)
				if !ev.OK {
					reloadErrs++
					t.Logf("reload %d: %s", ev.Seq, ev.Error)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), dur)
			defer cancel()
			stormDone := make(chan error, 1)
			go func() { stormDone <- s.Run(ctx) }()
			st := load(ctx, lab.client, at(lab.proxy, 80), rate)
			if err := <-stormDone; err != nil {
				t.Fatal(err)
			}
			var drops uint64
			if sd != nil {
				drops, _ = sd.Drops()
			}
			hit, worst := perReload(reloadStarts, st.failedAt)
			probeStart := time.Now()
			_, _ = harness.ListeningAmong(lab.proxy, 80, x.PIDs())
			t.Logf("ListeningAmong took %s; proxy %s", time.Since(probeStart), sockstat(t, lab.proxy))
			t.Logf("%s: %d attempts (%.0f/s), %d ok, failures %v; connect p99 %s max %s; %d reloads "+
				"(%d failed, mean %s), %d with failed attempts (worst %d); syn drops %d", c.name, st.attempts,
				float64(st.attempts)/dur.Seconds(), st.ok, st.failures, st.p99(), st.maxConnect, reloads, reloadErrs,
				reloadTime/time.Duration(max(reloads, 1)), hit, worst, drops)
		})
	}
}

// perReload attributes each failure to the last reload started before it (failures before the first
// reload are ignored) and returns how many reloads have failures and the most failures of one reload.
func perReload(starts, failures []time.Time) (hit, worst int) {
	counts := make([]int, len(starts))
	for _, f := range failures {
		i, _ := slices.BinarySearchFunc(starts, f, func(a, b time.Time) int { return a.Compare(b) })
		if i > 0 {
			counts[i-1]++
		}
	}
	for _, c := range counts {
		if c > 0 {
			hit++
		}
		worst = max(worst, c)
	}
	return hit, worst
}

// loadStats counts the outcomes of a load run.
type loadStats struct {
	mu         sync.Mutex
	attempts   int
	ok         int
	failures   map[string]int
	connects   []time.Duration
	maxConnect time.Duration
	failedAt   []time.Time // start of each failed attempt
}

func (s *loadStats) add(start time.Time, outcome string, connect time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	if outcome == "ok" {
		s.ok++
	} else {
		s.failures[outcome]++
		if outcome != "overload" {
			s.failedAt = append(s.failedAt, start)
		}
	}
	if connect > 0 {
		s.connects = append(s.connects, connect)
		s.maxConnect = max(s.maxConnect, connect)
	}
}

func (s *loadStats) p99() time.Duration {
	if len(s.connects) == 0 {
		return 0
	}
	c := slices.Clone(s.connects)
	slices.Sort(c)
	return c[len(c)*99/100]
}

// load drives open-loop HTTP/1.0 requests at rate per second from inside h until ctx ends: a pacer hands
// out tokens, workers on threads switched into h's namespace (never switched back) take them.
func load(ctx context.Context, h harness.NetnsHost, addr netip.AddrPort, rate float64) *loadStats {
	st := &loadStats{failures: map[string]int{}}
	tokens := make(chan struct{}, 10000)
	var wg sync.WaitGroup
	for range 512 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
			ns, err := unix.Open(h.NetnsPath(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return
			}
			err = unix.Setns(ns, unix.CLONE_NEWNET)
			unix.Close(ns)
			if err != nil {
				return
			}
			for range tokens {
				start := time.Now()
				outcome, connect := attempt(addr)
				st.add(start, outcome, connect)
			}
		}()
	}
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	for ctx.Err() == nil {
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		select {
		case tokens <- struct{}{}:
		default:
			st.add(time.Now(), "overload", 0)
		}
	}
	close(tokens)
	wg.Wait()
	return st
}

// attempt makes one HTTP/1.0 request and classifies it.
func attempt(addr netip.AddrPort) (string, time.Duration) {
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		return classify("connect", err), 0
	}
	connect := time.Since(start)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		return classify("write", err), connect
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return classify("read", err), connect
	}
	if !bytes.HasPrefix(b, []byte("HTTP/1.1 200")) && !bytes.HasPrefix(b, []byte("HTTP/1.0 200")) {
		return fmt.Sprintf("proto(%.12q)", b), connect
	}
	return "ok", connect
}

func classify(phase string, err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return phase + ":" + unix.ErrnoName(errno)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return phase + ":timeout"
	}
	return phase + ":" + err.Error()
}

// sockstat is the TCP line of the host's /proc/net/sockstat (inuse, orphan, tw, alloc, mem).
func sockstat(t *testing.T, h harness.NetnsHost) string {
	var b []byte
	err := h.Do(func() (err error) { b, err = os.ReadFile("/proc/thread-self/net/sockstat"); return err })
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "TCP:") {
			return l
		}
	}
	return ""
}
