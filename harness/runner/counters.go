package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/results"
)

// notableCounters are the ones a cell's summary line names when they moved: drops, overflows, resets, zero
// windows and TIME_WAIT reuse, each the kernel's own count of something a scenario family measures.
var notableCounters = []string{
	"TcpExt.ListenOverflows", "TcpExt.ListenDrops", "TcpExt.TCPTimeWaitOverflow", "TcpExt.TWRecycled",
	"TcpExt.TCPToZeroWindowAdv", "TcpExt.TCPAbortOnData", "TcpExt.TCPAbortOnClose", "TcpExt.TCPAbortOnTimeout",
	"Tcp.AttemptFails", "Tcp.EstabResets", "Tcp.OutRsts",
}

// startCounters reads every host's TCP counters now; stop reads them again and records what changed
// (harness.TCPCounters.Since) in counters.json (results.CountersFile) and as the cell's "kernel" result.
func (c *cellRun) startCounters() (stop func() error) {
	before, err := c.readCounters()
	if err != nil {
		return func() error { return err }
	}
	return func() error {
		after, err := c.readCounters()
		if err != nil {
			return err
		}
		delta := map[string]harness.TCPCounters{}
		for host, a := range after {
			delta[host] = a.Since(before[host])
		}
		b, err := json.MarshalIndent(delta, "", "  ")
		if err != nil {
			return fmt.Errorf("encode counters: %w", err)
		}
		if err := os.WriteFile(filepath.Join(c.dir, results.CountersFile), b, 0o644); err != nil {
			return fmt.Errorf("write counters: %w", err)
		}
		c.addAnalysis(results.AnalysisResult{Name: "kernel", Rep: c.cell.Rep, Summary: countersSummary(delta),
			Result: b})
		return nil
	}
}

func (c *cellRun) readCounters() (map[string]harness.TCPCounters, error) {
	out := map[string]harness.TCPCounters{}
	var errs []error
	for name, h := range c.env.Hosts {
		nh, ok := h.(harness.NetnsHost)
		if !ok {
			continue
		}
		var err error
		out[name], err = harness.ReadTCPCounters(nh)
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// countersSummary names the notable counters that moved, per host: "proxy ListenOverflows 12, ...".
func countersSummary(delta map[string]harness.TCPCounters) string {
	var parts []string
	for _, host := range slices.Sorted(maps.Keys(delta)) {
		for _, k := range notableCounters {
			if v := delta[host][k]; v != 0 {
				_, short, _ := strings.Cut(k, ".")
				parts = append(parts, fmt.Sprintf("%s %s %d", host, short, v))
			}
		}
	}
	if len(parts) == 0 {
		return "no drops, overflows, resets or zero windows counted"
	}
	return strings.Join(parts, ", ")
}
