package analyses

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/spec"
)

// TestTimeWaitSide: the checker's pair from the capture, the kernel's counts from both hosts' states series,
// and the prediction: check rate x share of closes leaving the TIME_WAIT on a side x the time since the
// first check (under 60 s).
func TestTimeWaitSide(t *testing.T) {
	dir := t.TempDir()
	for host, tw := range map[string]int{"checker": 2950, "backend": 3100} {
		var b strings.Builder
		for i := 1; i <= 20; i++ {
			fmt.Fprintf(&b, `{"host":%q,"t_ns":%d,"states":{"time_wait":%d}}`+"\n", host,
				int64(i)*int64(time.Second), tw*i/20)
		}
		if err := os.WriteFile(filepath.Join(dir, "states-"+host+".jsonl"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// 400 checks/s from 0 to 20 s: 8,001 connections; 37.5% of closes leave the TIME_WAIT on the checker
	// (1,000 of them simultaneous closes, also on the server), 75% on the server, as the FINs said.
	capt := &CaptureResult{Pairs: map[string]map[string]*PairCloses{"checker-eth0": {
		"proxy>backend":  {Conns: 8001, InitiatorFirst: 2000, ResponderFirst: 6001, TWInitiator: 3000, TWResponder: 6001, Simultaneous: 1000, First: 0, Last: 20 * time.Second},
		"client>proxy":   {Conns: 40, TWResponder: 40, First: 0, Last: 20 * time.Second},
		"client>backend": {},
	}}}
	// by the capture's clock: 150 TIME_WAITs a second on the checker, 300 on the server, 2 a second on the proxy
	// from the client's connections; second 0 takes the ones from before the epoch too
	for i := range 20 {
		p := capt.Pairs["checker-eth0"]
		p["proxy>backend"].noteTW(0, time.Duration(i)*time.Second+time.Millisecond)
		for range 149 {
			p["proxy>backend"].noteTW(0, time.Duration(i)*time.Second+time.Millisecond)
		}
		for range 300 {
			p["proxy>backend"].noteTW(1, time.Duration(i)*time.Second)
		}
		p["client>proxy"].noteTW(1, time.Duration(i)*time.Second)
		p["client>proxy"].noteTW(1, -time.Second)
	}
	// the checker's kernel refused 120 TIME_WAITs over its limit of 2950
	counters := `{"checker": {"TcpExt.TCPTimeWaitOverflow": 120, "Tcp.OutRsts": 3}, "backend": {}}`
	if err := os.WriteFile(filepath.Join(dir, "counters.json"), []byte(counters), 0o644); err != nil {
		t.Fatal(err)
	}
	in := &Input{Dir: dir, ResultOf: map[*Analyzer]any{Capture: capt}, Cell: spec.Cell{Scenario: spec.Scenario{
		Workload: spec.Workload{From: "client"},
		Hosts: []spec.Host{{Name: "checker", Sysctls: map[string]string{"net.ipv4.tcp_max_tw_buckets": "2950"}},
			{Name: "backend"}},
		Services: []spec.Service{{Name: "web", Kind: "nginx", Host: "backend"},
			{Name: "tg", Kind: "tengine", Host: "checker", Proxy: true, Backends: []string{"web"}}}}}}
	o, err := runTimeWaitSide(in)
	if err != nil {
		t.Fatal(err)
	}
	rs, ok := o.Value.(TimeWaitSides)
	if !ok || len(rs) != 1 {
		t.Fatalf("value %#v: want one checker pair", o.Value)
	}
	r := rs[0]
	if r.Checker != "checker" || r.Server != "backend" || r.Rate != 400 || r.Sampled[0].Last != 2950 ||
		r.Sampled[1].Last != 3100 || r.Sampled[0].LastAt != 20*time.Second || r.Sampled[0].Samples != 20 {
		t.Errorf("result %+v", r)
	}
	// 400/s x 3000/8001 x 20 s = 2999.63 from the checks, plus the client's 40 connections through the proxy,
	// whose TIME_WAIT is on the proxy's (the checker's) host: 39/20 s x 40/40 x 20 s = 39; 400/s x 6001/8001 x
	// 20 s = 6000.25 on the server
	if d := r.Predicted[0] - 3038.63; d < -0.01 || d > 0.01 {
		t.Errorf("predicted on the checker %.2f, want 3038.63", r.Predicted[0])
	}
	if d := r.Predicted[1] - 6000.25; d < -0.01 || d > 0.01 {
		t.Errorf("predicted on the server %.2f, want 6000.25", r.Predicted[1])
	}
	// 20 x 150 + 20 x 2 on the checker, 20 x 300 on the server
	if r.Counted != [2]float64{3040, 6000} {
		t.Errorf("counted %v, want [3040 6000]", r.Counted)
	}
	if r.MaxTW != [2]int{2950, 0} || r.Overflow != [2]int64{120, 0} {
		t.Errorf("tcp_max_tw_buckets %v, overflow %v: want [2950 0], [120 0]", r.MaxTW, r.Overflow)
	}
	if !strings.Contains(o.Summary, "1000 simultaneous closes") || len(o.Columns) != 7 ||
		!strings.Contains(o.Summary, "checker refused 120 TIME_WAITs over tcp_max_tw_buckets 2950") {
		t.Errorf("summary %q, %d columns", o.Summary, len(o.Columns))
	}
	if _, err := runTimeWaitSide(&Input{Dir: dir, ResultOf: map[*Analyzer]any{}}); err == nil {
		t.Error("no capture: no error")
	}
}

// TestTWBetween: a window's edge seconds count in proportion to their overlap.
func TestTWBetween(t *testing.T) {
	var p PairCloses
	for i := range 5 {
		for range 10 {
			p.noteTW(0, time.Duration(i)*time.Second+500*time.Millisecond)
		}
	}
	p.noteTW(0, -3*time.Second)          // before the epoch: second 0
	p.noteTW(0, time.Since(time.Time{})) // an epoch never set: not binned
	if len(p.TWBySecond[0]) != 5 {
		t.Fatalf("%d bins, want 5", len(p.TWBySecond[0]))
	}
	for _, c := range []struct {
		from, to time.Duration
		want     float64
	}{
		{-time.Minute, time.Minute, 51},
		{time.Second, 3 * time.Second, 20},
		{1500 * time.Millisecond, 3 * time.Second, 15},
		{0, 500 * time.Millisecond, 5.5},
		{10 * time.Second, time.Minute, 0},
	} {
		if got := p.TWBetween(0, c.from, c.to); got != c.want {
			t.Errorf("(%s, %s]: %g, want %g", c.from, c.to, got, c.want)
		}
	}
}
