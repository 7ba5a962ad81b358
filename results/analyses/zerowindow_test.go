package analyses

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/faultlab/faultlab/capture"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/harness/testutil"
)

// zeroWindowInput is a cell directory holding the testdata capture and records (see testdata/README.md).
func zeroWindowInput(t *testing.T) Input {
	t.Helper()
	dir := t.TempDir()
	for src, dst := range map[string]string{"zerowindow-backend-eth0.pcap": "backend-eth0.pcap",
		"zerowindow-records.jsonl": "records.jsonl"} {
		b, err := os.ReadFile(filepath.Join("testdata", src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// the cell's epoch: the capture's first packet is close enough (the TIME_WAIT tally counts seconds from it)
	first, err := capture.AnalyseFile(filepath.Join(dir, "backend-eth0.pcap"), capture.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	return Input{Dir: dir, Epoch: first.First, Addrs: map[string][]netip.Addr{"client": {a("198.18.0.2")}, "proxy": {a("198.18.1.2")},
		"backend": {a("198.18.2.2")}}, Cell: spec.Cell{Scenario: spec.Scenario{
		Workload: spec.Workload{Kind: "download", From: "client", Target: "lb",
			Options: map[string]string{"sizes": "16k:0.25,70k:0.25,256k:0.25,1m:0.25"}},
		Services: []spec.Service{{Name: "web", Kind: "nginx", Host: "backend"},
			{Name: "lb", Kind: "haproxy", Host: "proxy", Proxy: true, Backends: []string{"web"}}},
		Probes: &spec.Probes{Capture: []spec.CaptureSpec{{Host: "backend", Iface: "eth0"}}}}}}
}

func runZeroWindowOn(t *testing.T, in Input) ZeroWindowResult {
	t.Helper()
	out, err := Run([]string{"zero_window"}, in)
	if err != nil {
		t.Fatal(err)
	}
	var zs ZeroWindows
	for _, o := range out {
		if o.Name == "zero_window" {
			if err := json.Unmarshal(o.Result, &zs); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(zs) != 1 || zs[0].Host != "backend" {
		t.Fatalf("results %+v: want one, from the backend's capture", zs)
	}
	return zs[0]
}

// TestZeroWindowMatchesTshark: the proxy's zero-window advertisements the analysis counts, and the
// connections they fall in, are what Wireshark's tcp.analysis.zero_window finds in the same capture.
func TestZeroWindowMatchesTshark(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		testutil.SkipMissing(t, "tshark not installed (make deps installs it)")
	}
	in := zeroWindowInput(t)
	r := runZeroWindowOn(t, in)
	out, err := exec.Command("tshark", "-r", filepath.Join(in.Dir, "backend-eth0.pcap"), "-Y",
		"tcp.analysis.zero_window && ip.src == 198.18.1.2", "-T", "fields", "-e", "tcp.stream").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	streams := map[string]bool{}
	for _, s := range strings.Fields(string(out)) {
		streams[s] = true
	}
	adverts := bytes.Count(out, []byte{'\n'})
	if adverts == 0 || r.Adverts != adverts || r.WithZeroWindow != len(streams) {
		t.Errorf("analysis: %d adverts on %d connections; tshark: %d on %d (want equal, and some)", r.Adverts,
			r.WithZeroWindow, adverts, len(streams))
	}
	t.Logf("%d zero-window adverts by the proxy on %d of %d backend connections", r.Adverts, r.WithZeroWindow,
		r.Conns)
}

// TestZeroWindowBySize: the capture's 20 backend connections, split by the file they carried (the counts
// are tshark's conversation table of the testdata capture), and the client's 20 downloads by size.
func TestZeroWindowBySize(t *testing.T) {
	r := runZeroWindowOn(t, zeroWindowInput(t))
	want := map[string][2]int{"16k": {3, 3}, "70k": {6, 6}, "256k": {9, 9}, "1m": {2, 2}} // conns, downloads
	for _, b := range r.BySize {
		if w := want[b.Size]; b.Conns != w[0] || b.Downloads != w[1] {
			t.Errorf("%s: %d connections, %d downloads, want %v", b.Size, b.Conns, b.Downloads, w)
		}
		if b.Size == "16k" && b.WithZeroWindow != 0 {
			t.Errorf("16k: %d connections with zero windows: a 16 KiB response fits the initial window", b.WithZeroWindow)
		}
		if b.WithZeroWindow > 0 && (b.ZeroWindowTime.Count != uint64(b.WithZeroWindow) || b.ZeroWindowTime.Max <= 0) {
			t.Errorf("%s: zero-window time %+v over %d connections", b.Size, b.ZeroWindowTime, b.WithZeroWindow)
		}
	}
	// tshark: the proxy's first zero window on each connection acknowledged 129,008 to 227,446 bytes
	if tb := r.TakenBefore; tb.Count != 7 || tb.Min != 129007 || tb.Max != 227445 {
		t.Errorf("taken before the zero window: %+v, want 7 connections, 129,007 to 227,445 bytes", tb)
	}
	if r.Conns != 20 || r.CIMethod != ZeroWindowCI || !(r.CI.Lo < r.Fraction && r.Fraction < r.CI.Hi) {
		t.Errorf("all: %d connections, fraction %.3f, %s %+v", r.Conns, r.Fraction, r.CIMethod, r.CI)
	}
}

// TestZeroWindowRSS: the proxy's resident set per sample is the sum over its processes; the peak and mean
// over the samples are reported.
func TestZeroWindowRSS(t *testing.T) {
	in := zeroWindowInput(t)
	series := `{"t_ns":1,"procs":1,"pids":[{"pid":10,"age_ns":5,"rss_bytes":1000000}]}
{"t_ns":2,"procs":2,"pids":[{"pid":10,"age_ns":6,"rss_bytes":3000000},{"pid":11,"age_ns":1,"rss_bytes":2000000}]}
`
	if err := os.WriteFile(filepath.Join(in.Dir, "procs-lb.jsonl"), []byte(series), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runZeroWindowOn(t, in)
	if r.RSS == nil || *r.RSS != (ProxyRSS{Service: "lb", Samples: 2, Peak: 5000000, Mean: 3000000}) {
		t.Errorf("RSS %+v, want lb: 2 samples, peak 5 MB, mean 3 MB", r.RSS)
	}
}
