package capture

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/faultlab/faultlab/harness/testutil"
)

// TestFixturesMatchTshark checks the analyser's zero-window, window-full, retransmitted-SYN and RST counts
// against Wireshark's own analysis of the committed captures.
func TestFixturesMatchTshark(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		testutil.SkipMissing(t, "tshark not installed (make deps installs it)")
	}
	filters := []struct {
		name, filter string
		get          func(Counts) uint64
	}{
		{"zero_window", "tcp.analysis.zero_window", func(c Counts) uint64 { return c.ZeroWindow }},
		{"window_full", "tcp.analysis.window_full", func(c Counts) uint64 { return c.WindowFull }},
		{"syn_retrans", "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.analysis.retransmission",
			func(c Counts) uint64 { return c.SYNRetrans }},
		{"synack_retrans", "tcp.flags.syn==1 && tcp.flags.ack==1 && tcp.analysis.retransmission",
			func(c Counts) uint64 { return c.SYNACKRetrans }},
		{"rst", "tcp.flags.reset==1", func(c Counts) uint64 { return c.RST }},
		{"fin", "tcp.flags.fin==1", func(c Counts) uint64 { return c.FIN }},
	}
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			path := filepath.Join("testdata", f.name+".pcap")
			res, err := AnalyseFile(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			total := res.Total(nil)
			for _, flt := range filters {
				out, err := exec.Command("tshark", "-r", path, "-Y", flt.filter).Output()
				if err != nil {
					t.Fatalf("tshark -Y %q: %v", flt.filter, err)
				}
				if want := uint64(bytes.Count(out, []byte{'\n'})); flt.get(total) != want {
					t.Errorf("%s: analyser %d, tshark %d", flt.name, flt.get(total), want)
				}
			}
		})
	}
}
