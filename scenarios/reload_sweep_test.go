package scenarios

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/results"
)

// sweepFiles are the reload-rate sweep's scenarios, one per reload interval, slowest first.
var sweepFiles = []struct{ name, interval, file string }{
	{"every5s", "5 s", "reload-sweep-5s.yaml"},
	{"every1s", "1 s", "reload-sweep-1s.yaml"},
	{"every250ms", "250 ms", "reload-sweep-250ms.yaml"},
	{"every100ms", "100 ms", "reload-sweep-100ms.yaml"},
}

// synRetransmit is the client's first SYN retransmission (the kernel's initial RTO): a dropped SYN costs
// at least this; "well under" it is half of it.
const synRetransmit = time.Second

// TestReloadSweep is the reload-rate sweep: every mitigation at one reload every 5 s, 1 s, 250 ms and
// 100 ms, at 1,000 and 3,000 new connections/s. Each file's subtest prints its table and the ranking per
// connection rate (FAULTLAB_SWEEP_OUT=DIR also writes them to DIR/<subtest>.md), checks the file's claims,
// and at one reload every 5 s checks what syn-drop and syn-hold are for (checkSynMitigations). Long mode
// only (about 26 minutes on the lab machine):
//
//	FAULTLAB_LONG=1 go test ./scenarios -run TestReloadSweep -v -timeout 2h
//	FAULTLAB_LONG=1 go test ./scenarios -run TestReloadSweep/every5s -v   # one interval
func TestReloadSweep(t *testing.T) {
	if !longMode() {
		t.Skip("the reload-rate sweep runs in long mode only (FAULTLAB_LONG=1; about 26 minutes)")
	}
	for _, f := range sweepFiles {
		t.Run(f.name, func(t *testing.T) {
			rep := runScenario(t, f.file, backend())
			if rep == nil {
				return
			}
			md := sweepMarkdown(f.interval, f.file, rep)
			t.Logf("sweep table:\n%s", md)
			if dir := os.Getenv("FAULTLAB_SWEEP_OUT"); dir != "" {
				if err := os.WriteFile(filepath.Join(dir, f.name+".md"), []byte(md), 0o644); err != nil {
					t.Error(err)
				}
			}
			if f.name == "every5s" {
				for _, rate := range []string{"r1000", "r3000"} {
					checkSynMitigations(t, rep, rate)
				}
			}
		})
	}
}

// checkSynMitigations checks, at one connection rate of a sweep where reloads are rare, what the SYN
// mitigations are for: syn-drop has fewer bad reloads than legacy (its better_than claim holds, or is
// inconclusive: logged with its numbers) at the price of a connect p99 of at least the SYN retransmit time
// (its connect_p99_at_least claim, checked with the file's claims); syn-hold has no more failed attempts
// than syn-drop, and a connect p99 well under the retransmit time (it holds SYNs for the reload's length,
// it does not make clients retransmit).
func checkSynMitigations(t *testing.T, rep *results.Report, rate string) {
	t.Helper()
	drop, hold := rep.Cell("syn-drop-"+rate), rep.Cell("syn-hold-"+rate)
	if drop == nil || hold == nil {
		t.Fatalf("%s: no syn-drop or syn-hold cell", rate)
	}
	for _, v := range rep.Verdicts {
		if v.Cell == drop.Name && strings.HasPrefix(v.Claim, drop.Name+" has significantly fewer") {
			t.Logf("%s: %s: %s (%s)", rate, v.Status, v.Claim, v.Detail)
		}
	}
	ds, hs := drop.Stats, hold.Stats
	t.Logf("%s: syn-drop %d failed of %d (%d/%d bad reloads), connect p99 %s; syn-hold %d failed of %d "+
		"(%d/%d), connect p99 %s", rate, ds.Failures, ds.Attempts, ds.BadWindows, ds.Windows, ds.Connect.P99,
		hs.Failures, hs.Attempts, hs.BadWindows, hs.Windows, hs.Connect.P99)
	if hs.Failures > ds.Failures {
		t.Errorf("%s: syn-hold failed %d attempts, syn-drop %d: the hold should fail no more than the drop",
			rate, hs.Failures, ds.Failures)
	}
	if hs.Connect.P99 >= synRetransmit/2 {
		t.Errorf("%s: syn-hold's connect p99 is %s, not well under the SYN retransmit time (%s)", rate,
			hs.Connect.P99, synRetransmit)
	}
}

// sweepCell splits a sweep cell's name, <mitigation>-r<rate>.
func sweepCell(name string) (mitigation string, rate int, ok bool) {
	i := strings.LastIndex(name, "-r")
	if i < 0 {
		return "", 0, false
	}
	rate, err := strconv.Atoi(name[i+2:])
	return name[:i], rate, err == nil
}

// sweepMarkdown is one sweep file's table (one row per mitigation and connection rate) and its ranking per
// rate: the mitigations with no failed attempt, cheapest first (by connect p99, then p50), then the others
// by failed attempts.
func sweepMarkdown(interval, file string, rep *results.Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "One reload every %s (`%s`):\n\n", interval, file)
	b.WriteString("| mitigation | conn/s | attempts | failed | failure rate % (95% CI, clustered) | resets | " +
		"timeouts | reloads | bad reloads (95% CI, %) | connect p50 | connect p99 |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	byRate := map[int][]*results.CellReport{}
	for i := range rep.Cells {
		c := &rep.Cells[i]
		m, rate, ok := sweepCell(c.Name)
		if !ok || c.Stats == nil {
			continue
		}
		byRate[rate] = append(byRate[rate], c)
		s := c.Stats
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %s [%s, %s] | %d | %d | %d | %d/%d [%s, %s] | %s | %s |\n", m, rate,
			s.Attempts, s.Failures, pct(s.FailureRate), pct(s.RateCI.Lo), pct(s.RateCI.Hi), s.Resets, s.Timeouts,
			s.Reloads, s.BadWindows, s.Windows, pct(s.BadWindowCI.Lo), pct(s.BadWindowCI.Hi),
			dur(s.Connect.P50), dur(s.Connect.P99))
	}
	b.WriteString("\nRanking (no failed attempt, cheapest connect p99 first; then the others, fewest failures first):\n\n")
	for _, rate := range slices.Sorted(maps.Keys(byRate)) {
		fmt.Fprintf(&b, "- %d conn/s: %s\n", rate, ranking(byRate[rate]))
	}
	return b.String()
}

// ranking orders one rate's cells: those without failures by connect p99 (then p50), then the others by
// failed attempts; it names the cheapest mitigation with no detectable failure, or says there is none.
func ranking(cells []*results.CellReport) string {
	cells = slices.Clone(cells)
	slices.SortStableFunc(cells, func(a, b *results.CellReport) int {
		as, bs := a.Stats, b.Stats
		if (as.Failures == 0) != (bs.Failures == 0) {
			if as.Failures == 0 {
				return -1
			}
			return 1
		}
		if as.Failures != bs.Failures {
			return cmp.Compare(as.Failures, bs.Failures)
		}
		return cmp.Or(cmp.Compare(as.Connect.P99, bs.Connect.P99), cmp.Compare(as.Connect.P50, bs.Connect.P50))
	})
	var parts []string
	for _, c := range cells {
		m, _, _ := sweepCell(c.Name)
		s := c.Stats
		if s.Failures == 0 {
			parts = append(parts, fmt.Sprintf("%s (0 failed, p99 %s)", m, dur(s.Connect.P99)))
		} else {
			parts = append(parts, fmt.Sprintf("%s (%d failed in %d/%d reloads, p99 %s)", m, s.Failures,
				s.BadWindows, s.Windows, dur(s.Connect.P99)))
		}
	}
	head := "no mitigation without failures"
	if len(cells) > 0 && cells[0].Stats.Failures == 0 {
		m, _, _ := sweepCell(cells[0].Name)
		head = "**" + m + "**"
	}
	return head + ": " + strings.Join(parts, " < ")
}

func pct(f float64) string { return strconv.FormatFloat(100*f, 'g', 3, 64) }

// dur rounds a latency for the table: µs below 1 ms, else 3 significant digits.
func dur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// TestSweepRanking: the ranking puts the cells without failures first, cheapest connect p99 first, then the
// others by failed attempts, and names the cheapest one; without such a cell it says so.
func TestSweepRanking(t *testing.T) {
	cell := func(name string, failures int, p99 time.Duration) results.CellReport {
		return results.CellReport{Name: name, Stats: &results.CellStats{Attempts: 1000, Failures: failures,
			BadWindows: min(failures, 3), Windows: 10, Connect: results.Quantiles{P50: p99 / 10, P99: p99}}}
	}
	rep := &results.Report{Cells: []results.CellReport{
		cell("legacy-r1000", 40, 5*time.Millisecond),
		cell("syn-drop-r1000", 0, 1020*time.Millisecond),
		cell("socket-transfer-r1000", 0, 4*time.Millisecond),
		cell("syn-hold-r1000", 2, 200*time.Millisecond),
		cell("legacy-r3000", 90, 6*time.Millisecond),
		cell("syn-hold-r3000", 3, 250*time.Millisecond),
	}}
	md := sweepMarkdown("5 s", "reload-sweep-5s.yaml", rep)
	for _, want := range []string{
		"| syn-drop | 1000 | 1000 | 0 | 0 [0, 0] | 0 | 0 | 0 | 0/10 [0, 0] | 102ms | 1.02s |",
		"- 1000 conn/s: **socket-transfer**: socket-transfer (0 failed, p99 4ms) < syn-drop (0 failed, p99 1.02s) < " +
			"syn-hold (2 failed in 2/10 reloads, p99 200ms) < legacy (40 failed in 3/10 reloads, p99 5ms)",
		"- 3000 conn/s: no mitigation without failures: syn-hold (3 failed in 3/10 reloads, p99 250ms) < legacy",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("missing %q in\n%s", want, md)
		}
	}
	if got := strings.Index(md, "- 1000"); got < 0 || got > strings.Index(md, "- 3000") {
		t.Errorf("rates out of order:\n%s", md)
	}
}
