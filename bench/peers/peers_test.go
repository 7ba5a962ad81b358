package peers

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// vegeta v12.13.0's report of an attack at 3,000/s that issued 2,432/s, all successes (a busy machine).
func TestParseVegeta(t *testing.T) {
	st, err := ParseVegeta([]byte(readTestdata(t, "vegeta-report.json")))
	if err != nil {
		t.Fatal(err)
	}
	if st.Attempts != 7342 || st.Failed != 0 || st.P99 != 1533450396 || math.Abs(st.Achieved-2432.4796775392556) > 1e-9 {
		t.Errorf("got %+v", st)
	}
	st.Target = 3000
	if st.Held() {
		t.Errorf("2,432/s of 3,000/s held")
	}
	if _, err := ParseVegeta([]byte(`{"requests":0}`)); err == nil {
		t.Error("a report without requests parsed")
	}
	if _, err := ParseVegeta([]byte("Requests [total, rate]")); err == nil {
		t.Error("the text report parsed as JSON")
	}
}

// httperf 0.9.0 with -v -v: its lifetime histogram has 200 connections; the 198th falls in the 11-12 ms bin.
func TestParseHttperfHistogram(t *testing.T) {
	st, err := ParseHttperf(readTestdata(t, "httperf-histogram.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := GenStep{Tool: "httperf", Attempts: 200, Achieved: 200 / 0.996, Failed: 0, P99: 12 * time.Millisecond,
		LagP99: -1}
	if st != want {
		t.Errorf("got %+v, want %+v", st, want)
	}
}

// httperf at 8,000/s on 2 busy cores: 10,976 connections opened, 13,024 not (fd-unavail: its 1,024
// descriptors were all in use); -v once, so no histogram.
func TestParseHttperfUnopened(t *testing.T) {
	st, err := ParseHttperf(readTestdata(t, "httperf-fd-unavail.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Attempts != 24000 || st.Failed != 13024 || st.P99 != -1 || math.Abs(st.Achieved-10976/3.183) > 1e-9 {
		t.Errorf("got %+v", st)
	}
	if _, err := ParseHttperf(strings.Replace(readTestdata(t, "httperf-fd-unavail.txt"), "Errors: fd-unavail",
		"Errors: fd-unavailable", 1)); err == nil {
		t.Error("output without the second Errors line parsed")
	}
}

func TestParseTcpdump(t *testing.T) {
	for _, tc := range []struct {
		file string
		want TcpdumpStats
	}{
		{"tcpdump-none.txt", TcpdumpStats{}}, // an idle loopback
		// tcpdump -B 32 (KiB) at 150,000 datagrams/s in a lab namespace
		{"tcpdump-drops.txt", TcpdumpStats{Captured: 141463, Received: 149744, Dropped: 8281}},
	} {
		got, err := ParseTcpdump(readTestdata(t, tc.file))
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.file, got, err, tc.want)
		}
	}
	if _, err := ParseTcpdump("tcpdump: listening on eth0\n12 packets captured\n12 packets received by filter\n"); err == nil {
		t.Error("stderr without the drop line parsed")
	}
}

func TestCountSS(t *testing.T) {
	got, err := CountSS(readTestdata(t, "ss-tan.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for state, n := range ssWant {
		if got[state] != n {
			t.Errorf("%s: %d, want %d (all: %v)", state, got[state], n, got)
		}
	}
	if _, err := CountSS("Recv-Q Send-Q\n"); err == nil {
		t.Error("output without the State header parsed")
	}
}

func TestHeld(t *testing.T) {
	for _, tc := range []struct {
		s    GenStep
		held bool
	}{
		{GenStep{Target: 1000, Achieved: 990, Attempts: 5000, Failed: 50}, true},
		{GenStep{Target: 1000, Achieved: 989, Attempts: 5000}, false},              // issued 1.1% short
		{GenStep{Target: 1000, Achieved: 1000, Attempts: 5000, Failed: 51}, false}, // 1.02% failed
		{GenStep{Target: 1000, Achieved: 1000}, false},                             // nothing issued
	} {
		if got := tc.s.Held(); got != tc.held {
			t.Errorf("%+v: held %v, want %v", tc.s, got, tc.held)
		}
	}
	if got := (GenStep{Attempts: 4000, CPU: 2 * time.Second}).CPUPer1000(); got != 500*time.Millisecond {
		t.Errorf("CPU per 1,000: %s", got)
	}
}

func TestHighestHeld(t *testing.T) {
	ok := func(tool string, r float64) GenStep {
		return GenStep{Tool: tool, Target: r, Achieved: r, Attempts: int64(r) * 5}
	}
	short := func(tool string, r float64) GenStep {
		return GenStep{Tool: tool, Target: r, Achieved: r * 0.8, Attempts: int64(r) * 4}
	}
	steps := []GenStep{ok("a", 6000), ok("a", 3000), short("a", 9000), ok("b", 3000), short("b", 6000),
		ok("b", 9000), short("c", 3000)}
	for tool, want := range map[string]float64{"a": 6000, "b": 3000, "c": 0, "d": 0} {
		if got := HighestHeld(steps, tool); got != want {
			t.Errorf("%s: %v, want %v", tool, got, want)
		}
	}
}

func TestRatio(t *testing.T) {
	rate := Ratio{Lab: 12000, Peer: 10000, HigherIsBetter: true}
	cpu := Ratio{Lab: 200, Peer: 150}
	if v := rate.Value(); v != 1.2 || rate.Below1() {
		t.Errorf("rate ratio %v", v)
	}
	if v := cpu.Value(); v != 0.75 || !cpu.Below1() {
		t.Errorf("CPU ratio %v", v)
	}
	for _, r := range []Ratio{{Lab: 1}, {Peer: 1}, {Lab: math.NaN(), Peer: 1}} {
		if !math.IsNaN(r.Value()) || r.Below1() {
			t.Errorf("%+v: %v, want NaN", r, r.Value())
		}
	}
	name, v, ok := BestPeer(map[string]float64{"vegeta": 9000, "httperf": 12000, "ab": 0}, true)
	if name != "httperf" || v != 12000 || !ok {
		t.Errorf("best rate: %s %v %v", name, v, ok)
	}
	name, v, ok = BestPeer(map[string]float64{"vegeta": 9000, "httperf": 12000, "ab": 0}, false)
	if name != "vegeta" || v != 9000 || !ok {
		t.Errorf("best cost: %s %v %v", name, v, ok)
	}
	if _, _, ok := BestPeer(map[string]float64{"x": 0}, true); ok {
		t.Error("a peer without a figure was best")
	}
}

func TestWriteTable(t *testing.T) {
	var b strings.Builder
	err := WriteTable(&b, []Ratio{
		{What: "rate", Unit: "conn/s", Lab: 12999, Peer: 10000, PeerBy: "vegeta", HigherIsBetter: true},
		{What: "cpu", Unit: "ms", Lab: 200, Peer: 150, PeerBy: "httperf", Note: "profile p.pprof"},
		{What: "memory", Unit: "MB", Lab: 39, Note: "no peer"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "| rate | 12,999 conn/s | 10,000 conn/s (vegeta) | 1.30 |  |\n" +
		"| cpu | 200 ms | 150 ms (httperf) | 0.75 (below 1.0) | profile p.pprof |\n" +
		"| memory | 39.0 MB | n/a | n/a | no peer |\n"
	if !strings.HasSuffix(b.String(), want) {
		t.Errorf("got\n%s\nwant it to end with\n%s", b.String(), want)
	}
}

// ssWant is what testdata/ss-tan.txt holds: the first 40 lines of `ss -tan` in the backend's namespace of
// bench/peers/lab.yaml (nginx listening, the load's and the sampler comparison's TIME_WAIT sockets).
var ssWant = map[string]int{"LISTEN": 1, "TIME-WAIT": 39}
