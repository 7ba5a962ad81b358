package capture

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkAnalyse measures the analyser's speed in packets/s on one file and compares it with
// `tshark -r FILE -q -z conv,tcp` on the same file: x_faster_than_tshark (target >= 5). The file is a
// synthetic capture of 20,000 connections (160,000 packets), or FAULTLAB_BENCH_PCAP if set.
func BenchmarkAnalyse(b *testing.B) {
	path := os.Getenv("FAULTLAB_BENCH_PCAP")
	if path == "" {
		s := newSynth(b)
		for i := range 20000 {
			cli := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(2 + i%4)}), uint16(10000+i))
			s.exchange(b, time.Duration(i)*100*time.Microsecond, cli, srvAP, 100, 1000)
		}
		path = filepath.Join(b.TempDir(), "synth.pcap")
		if err := os.WriteFile(path, s.bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	res, err := AnalyseFile(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	tshark := time.Duration(0)
	if _, err := exec.LookPath("tshark"); err == nil {
		t0 := time.Now()
		out, err := exec.Command("tshark", "-r", path, "-q", "-z", "conv,tcp").CombinedOutput()
		if err != nil {
			b.Fatalf("tshark: %v: %s", err, out)
		}
		tshark = time.Since(t0)
	} else {
		b.Log("tshark not installed: no comparison")
	}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := AnalyseFile(path, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	per := time.Since(start) / time.Duration(b.N)
	pps := float64(res.Records) / per.Seconds()
	b.ReportMetric(pps, "pkts/s")
	b.ReportMetric(float64(res.Records), "packets")
	if tshark > 0 {
		b.ReportMetric(float64(res.Records)/tshark.Seconds(), "tshark_pkts/s")
		b.ReportMetric(float64(tshark)/float64(per), "x_faster_than_tshark")
	}
}
