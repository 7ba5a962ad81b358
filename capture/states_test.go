package capture

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
)

// ssStates maps ss's state names to the kernel's.
var ssStates = map[string]string{"ESTAB": "ESTABLISHED", "SYN-SENT": "SYN_SENT", "SYN-RECV": "SYN_RECV",
	"FIN-WAIT-1": "FIN_WAIT1", "FIN-WAIT-2": "FIN_WAIT2", "TIME-WAIT": "TIME_WAIT", "UNCONN": "CLOSE",
	"CLOSE-WAIT": "CLOSE_WAIT", "LAST-ACK": "LAST_ACK", "LISTEN": "LISTEN", "CLOSING": "CLOSING"}

// ssCounts runs `ip netns exec NS ss -tan` and counts sockets by state, overall and for local ports in r.
func ssCounts(t testing.TB, ns string, r PortRange) (all, inRange map[string]int) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "ss", "-tan").Output()
	if err != nil {
		t.Fatalf("ss -tan in %s: %v", ns, err)
	}
	all, inRange = map[string]int{}, map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		state, ok := ssStates[f[0]]
		if !ok {
			t.Fatalf("ss state %q unknown", f[0])
		}
		all[state]++
		ap, err := netip.ParseAddrPort(strings.Replace(f[3], "*:", "0.0.0.0:", 1))
		if err != nil {
			t.Fatalf("ss local address %q: %v", f[3], err)
		}
		if p := int(ap.Port()); p >= r.Lo && p <= r.Hi {
			inRange[state]++
		}
	}
	return all, inRange
}

// sockstatOf reads the namespace's /proc/net/sockstat with `ip netns exec NS cat`.
func sockstatOf(t testing.TB, ns string) Sockstat {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/sockstat").Output()
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseSockstat(out)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestStatesMatchSS leaves over 10,000 TIME_WAIT sockets on the client (the client closes first), plus held,
// half-closed and orphaned connections, then checks the sampler's counts against ss -tan on both hosts.
func TestStatesMatchSS(t *testing.T) {
	l := newLab(t, nil)
	srv := netip.AddrPortFrom(l.server.Addrs()[0], 8080)
	startServer(t, l.server, srv)
	// An IPv6 listener: the dump covers both address families.
	startServer(t, l.client, netip.MustParseAddrPort("[::1]:9999"))
	const closes, holds, halves, orphans = 10500, 30, 20, 10
	load := runClients(t, l.client, srv, 0, closes+holds+halves+orphans, 8, func(i int) clientAction {
		switch {
		case i < holds:
			return actHold
		case i < holds+halves:
			return actHalfClose
		case i < holds+halves+orphans:
			return actOrphan
		}
		return actClientCloses
	})
	if load.failed.Load() != 0 {
		t.Fatalf("%d connections failed: %v", load.failed.Load(), load.err())
	}
	// The last connections' handshakes with the server end within a round trip: wait until the server has
	// settled into its CLOSE_WAITs (one per half-closed or orphaned connection) and has no LAST_ACK left.
	waitStates(t, l.server, func(s StateSample) bool {
		return s.States.CloseWait == halves+orphans && s.States.LastAck == 0
	})
	for _, h := range []harness.NetnsHost{l.client, l.server} {
		t.Run(h.Name(), func(t *testing.T) {
			ss, err := OpenSocketStates(h, StateSampler{})
			if err != nil {
				t.Fatal(err)
			}
			defer ss.Close()
			got, err := ss.Sample()
			if err != nil {
				t.Fatal(err)
			}
			all, inRange := ssCounts(t, nsName(h), got.Ports[0].PortRange)
			for _, name := range StateNames[1:] {
				if got.States.Get(name) != all[name] || got.Ports[0].States.Get(name) != inRange[name] {
					t.Errorf("%s: sampler %d (ephemeral ports %d), ss %d (%d)", name, got.States.Get(name),
						got.Ports[0].States.Get(name), all[name], inRange[name])
				}
			}
			want := sockstatOf(t, nsName(h))
			if got.Sockstat.InUse != want.InUse || got.Sockstat.TimeWait != want.TimeWait {
				t.Errorf("sockstat %+v, cat /proc/net/sockstat %+v", got.Sockstat, want)
			}
			b, _ := json.Marshal(got)
			t.Logf("sample (%s): %s", got.Dump, b)
		})
	}
	c, err := OpenSocketStates(l.client, StateSampler{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, _ := c.Sample()
	if s.States.TimeWait < 10000 || s.States.Established != holds || s.States.FinWait2 != halves+orphans ||
		s.States.Listen != 1 {
		t.Errorf("client states %+v: want >= 10000 TIME_WAIT, %d ESTABLISHED, %d FIN_WAIT2, 1 LISTEN", s.States,
			holds, halves+orphans)
	}
	// Orphaned FIN_WAIT2 sockets become time-wait minisockets: sockstat counts them as tw, ss as FIN-WAIT-2.
	if s.Sockstat.TimeWait != s.States.TimeWait+orphans || s.Orphans != 0 {
		t.Errorf("sockstat tw %d, TIME_WAIT %d, orphans %d", s.Sockstat.TimeWait, s.States.TimeWait, s.Orphans)
	}
}

func waitStates(t testing.TB, h harness.NetnsHost, ok func(StateSample) bool) {
	t.Helper()
	ss, err := OpenSocketStates(h, StateSampler{})
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := ss.Sample()
		if err != nil {
			t.Fatal(err)
		}
		if ok(s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("states of %s did not settle: %+v", h.Name(), s.States)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProbesFromConfig builds a capture, a state sampler and a process sampler from a Config and checks
// the files they leave.
func TestProbesFromConfig(t *testing.T) {
	l := newLab(t, nil)
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	cfg := Config{
		Links:  []LinkCapture{{Host: "router", Iface: "client", Snaplen: 96, Filter: "tcp port 8080"}},
		States: []StateSampler{{Host: "server", Interval: 50 * time.Millisecond}},
		Procs:  []ProcSampler{{Service: "sleeper", Interval: 50 * time.Millisecond}},
	}
	dir := t.TempDir()
	set, err := cfg.Build(Target{Hosts: HostsOf(l.env), Dir: dir,
		PIDs: func(string) (func() []int, error) { return func() []int { return []int{sleep.Process.Pid} }, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv := netip.AddrPortFrom(l.server.Addrs()[0], 8080)
	startServer(t, l.server, srv)
	load := runClients(t, l.client, srv, 8081, 20, 2, func(i int) clientAction {
		return []clientAction{actServerCloses, actRefused}[i%2]
	})
	time.Sleep(200 * time.Millisecond) // let both samplers take a few samples
	if err := set.Stop(); err != nil {
		t.Fatal(err)
	}
	if load.failed.Load() != 0 {
		t.Fatal(load.err())
	}
	res, err := AnalyseFile(dir+"/router-client.pcap", Options{Roles: l.roles()})
	if err != nil {
		t.Fatal(err)
	}
	// The filter keeps port 8080 only: the refused connections to 8081 are not in the file.
	if res.Conns.Established != 10 || res.Conns.Refused != 0 || res.Other != 0 {
		t.Errorf("filtered capture: %+v", res.Conns)
	}
	var st CaptureStats
	readJSON(t, dir+"/router-client.capture.json", &st)
	if st.Engine != EngineAFPacket || st.Dropped != 0 || st.Written != res.Records || st.Snaplen != 96 {
		t.Errorf("capture stats %+v", st)
	}
	states := readLines[StateSample](t, dir+"/states-server.jsonl")
	procs := readLines[ProcSample](t, dir+"/procs-sleeper.jsonl")
	if len(states) < 2 || states[0].Host != "server" || states[len(states)-1].States.Listen != 1 {
		t.Errorf("state samples: %+v", states)
	}
	if len(procs) < 2 || procs[len(procs)-1].Procs != 1 || procs[len(procs)-1].OldestAge <= 0 {
		t.Errorf("process samples: %+v", procs)
	}
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readLines[T any](t testing.TB, path string) []T {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	for i, line := range bytes.Split(bytes.TrimSpace(b), []byte{'\n'}) {
		var v T
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatalf("%s line %d: %v", path, i+1, err)
		}
		out = append(out, v)
	}
	return out
}
