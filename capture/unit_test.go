package capture

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
)

func TestParseSockstat(t *testing.T) {
	in := "sockets: used 291\nTCP: inuse 5 orphan 2 tw 26001 alloc 17 mem 3\nUDP: inuse 1 mem 0\n"
	got, err := parseSockstat([]byte(in))
	if err != nil || got != (Sockstat{InUse: 5, Orphan: 2, TimeWait: 26001, Alloc: 17, Mem: 3}) {
		t.Errorf("got %+v, %v", got, err)
	}
	for _, bad := range []string{"", "UDP: inuse 1\n", "TCP: inuse x\n"} {
		if _, err := parseSockstat([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestStateMask(t *testing.T) {
	m, err := stateMask([]string{"time_wait", "SYN_RECV"})
	if err != nil || m != 1<<harness.TCPTimeWait|1<<harness.TCPSynRecv|1<<harness.TCPNewSynRecv {
		t.Errorf("mask %#x, %v", m, err)
	}
	if _, err := stateMask([]string{"TIME-WAIT"}); err == nil {
		t.Error("ss spelling accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{
		Links:  []LinkCapture{{Host: "router", Iface: "client", Snaplen: 128, Filter: "tcp"}},
		States: []StateSampler{{Host: "proxy", Interval: time.Second, PortRanges: []PortRange{{Lo: 20000, Hi: 20999}}}},
		Procs:  []ProcSampler{{Service: "haproxy"}},
	}
	if err := good.Validate(); err != nil {
		t.Errorf("good config: %v", err)
	}
	bad := Config{
		Links: []LinkCapture{{Iface: "a/b", Snaplen: 10, Engine: "pcap"}, {Host: "h", Iface: "eth0"},
			{Host: "h", Iface: "eth0"}},
		States: []StateSampler{{Host: "h", States: []string{"BOGUS"}, PortRanges: []PortRange{{Lo: 5, Hi: 1}}}},
		Procs:  []ProcSampler{{Interval: -time.Second}},
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"links[0]: iface", "links[0]: snaplen", "links[0]: engine", "links[0]: host",
		"links[2]: h/eth0: captured twice", "states[0]: state \"BOGUS\"", "states[0]: port_ranges[0]",
		"procs[0]: service", "procs[0]: interval"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestSampleProcs(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	origin := time.Now().Add(-time.Minute)
	time.Sleep(50 * time.Millisecond)
	s, err := SampleProcs("sleeper", []int{cmd.Process.Pid, gone.Process.Pid}, origin)
	if err != nil {
		t.Fatal(err)
	}
	if s.Procs != 1 || s.PIDs[0].PID != cmd.Process.Pid || s.OldestAge <= 0 || s.OldestAge > 10*time.Second ||
		s.T < int64(time.Minute) || s.Service != "sleeper" {
		t.Errorf("sample %+v", s)
	}
	// sleep's resident set: at least a page, far below a gigabyte
	if rss := s.PIDs[0].RSS; rss < int64(os.Getpagesize()) || rss > 1<<30 {
		t.Errorf("rss %d bytes", rss)
	}
}
