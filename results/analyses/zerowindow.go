package analyses

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/faultlab/faultlab/capture"
	"github.com/faultlab/faultlab/harness/services"
	"github.com/faultlab/faultlab/loadgen"
	"github.com/faultlab/faultlab/results"
)

// ZeroWindow measures pathology 5 (seeds/003): a proxy whose clients drain slowly (a WAN) and whose backend
// fills fast (a LAN) fills its buffer and its socket's receive buffer, and advertises a zero window toward
// the backend. Per capture link, over the proxy's complete connections toward backends (SYN captured): how
// many saw a zero window from the proxy (Wireshark's tcp.analysis.zero_window: window 0 on a segment without
// SYN, FIN or RST), with a Wilson score interval; how long the zero windows lasted; how long the backend
// connections lived. With the download workload, the same per file size (a connection's size is the file
// size nearest to the backend's payload), beside the clients' download times of that size.
var ZeroWindow = &Analyzer{
	Name:     "zero_window",
	Doc:      "share of the proxy's backend connections on which it advertised a zero window, per file size",
	Requires: []*Analyzer{Capture},
	Run:      runZeroWindow,
}

// ZeroWindowConf is the confidence level of the intervals the analysis reports.
const ZeroWindowConf = 0.95

// ZeroWindowCI names the interval method in the results.
const ZeroWindowCI = "Wilson score interval, 95%"

// ZeroWindowResult is one capturing host's view of the proxy's backend connections.
type ZeroWindowResult struct {
	Host string `json:"host"` // the host whose capture saw them
	ZeroWindowCounts
	// BySize splits the connections by file size (download workload only), smallest first; a size with no
	// connection is listed with zero counts.
	BySize []ZeroWindowSize `json:"by_size,omitempty"`
	// RSS is the proxy's memory over the cell (nil without a procs probe on the workload's target).
	RSS *ProxyRSS `json:"proxy_rss,omitempty"`
}

// ZeroWindowCounts are the zero-window figures of a set of backend connections.
type ZeroWindowCounts struct {
	Conns          int              `json:"conns"`
	WithZeroWindow int              `json:"with_zero_window"`
	Fraction       float64          `json:"fraction"`
	CI             results.Interval `json:"ci"`
	CIMethod       string           `json:"ci_method"`
	// Adverts is the proxy's zero-window advertisements toward the backend (tcp.analysis.zero_window).
	Adverts int `json:"adverts"`
	// ZeroWindowTime is over the connections with a zero window; Duration over all (SYN to last packet).
	ZeroWindowTime capture.DurationStats `json:"zero_window_time"`
	Duration       capture.DurationStats `json:"duration"`
	// TakenBefore is, over the connections with a zero window, how many bytes of the response the proxy had
	// acknowledged when it first advertised one: what its receive buffer and its own buffer held, plus what
	// it had passed on toward the client by then.
	TakenBefore ByteStats `json:"taken_before_zero_window"`
	zwt, dur    capture.DurationHist
}

// ByteStats summarises byte counts.
type ByteStats struct {
	Count int     `json:"count"`
	Min   uint64  `json:"min"`
	Mean  float64 `json:"mean"`
	Max   uint64  `json:"max"`
}

func (b *ByteStats) add(n uint64) {
	if b.Count == 0 || n < b.Min {
		b.Min = n
	}
	b.Max = max(b.Max, n)
	b.Mean += (float64(n) - b.Mean) / float64(b.Count+1)
	b.Count++
}

// ZeroWindowSize is one file size: the backend connections that carried it and the clients' downloads of it.
type ZeroWindowSize struct {
	Size  string `json:"size"`  // as the workload names it, e.g. "70k"
	Bytes int64  `json:"bytes"` // the file's size
	ZeroWindowCounts
	// Downloads counts the client's successful downloads of this size; Download and FirstByte are their
	// total times and times to first byte, from the intended start.
	Downloads int                   `json:"downloads"`
	Download  capture.DurationStats `json:"download"`
	FirstByte capture.DurationStats `json:"first_byte"`
	dl, fb    capture.DurationHist
}

// ZeroWindows lists a cell's results, one per capturing host that saw proxy-to-backend connections.
type ZeroWindows []ZeroWindowResult

func (c *ZeroWindowCounts) add(sc serverConn) {
	c.Conns++
	c.Adverts += sc.zeroWindows
	c.dur.Add(sc.dur)
	if sc.zeroWindows > 0 {
		c.WithZeroWindow++
		c.zwt.Add(sc.zeroWindowTime)
		c.TakenBefore.add(sc.zeroWindowAfter)
	}
}

func (c *ZeroWindowCounts) close() {
	c.CI, c.CIMethod = results.Wilson(c.WithZeroWindow, c.Conns, ZeroWindowConf), ZeroWindowCI
	if c.Conns > 0 {
		c.Fraction = float64(c.WithZeroWindow) / float64(c.Conns)
	}
	c.ZeroWindowTime, c.Duration = c.zwt.Stats(), c.dur.Stats()
}

func runZeroWindow(in *Input) (Output, error) {
	capt, _ := in.ResultOf[Capture].(*CaptureResult)
	if capt == nil || len(capt.conns) == 0 {
		return Output{}, fmt.Errorf("needs a capture of the proxy's connections toward its backends " +
			"(probes.capture on the backend's or the proxy's link)")
	}
	sizes, err := downloadSizes(in)
	if err != nil {
		return Output{}, err
	}
	rss, err := proxyRSS(in)
	if err != nil {
		return Output{}, err
	}
	var out ZeroWindows
	for _, host := range slices.Sorted(maps.Keys(capt.conns)) {
		r := ZeroWindowResult{Host: host, BySize: sizes.empty(), RSS: rss}
		for _, sc := range capt.conns[host] {
			r.add(sc)
			if i := sizes.nearest(float64(sc.respBytes)); i >= 0 {
				r.BySize[i].add(sc)
			}
		}
		out = append(out, r)
	}
	if err := addDownloads(in, sizes, out); err != nil {
		return Output{}, err
	}
	for i := range out {
		out[i].close()
		for j := range out[i].BySize {
			b := &out[i].BySize[j]
			b.close()
			b.Download, b.FirstByte = b.dl.Stats(), b.fb.Stats()
		}
	}
	return Output{Value: out, Summary: out.summary(), Columns: out.columns()}, nil
}

// fileSizes are the download workload's files, smallest first.
type fileSizes []ZeroWindowSize

// downloadSizes reads the files of a download workload (none for another workload).
func downloadSizes(in *Input) (fileSizes, error) {
	w := in.Cell.Scenario.Workload
	if w.Kind != "download" {
		return nil, nil
	}
	mix, err := loadgen.ParseSizeMix(w.Options["sizes"])
	if err != nil {
		return nil, fmt.Errorf("workload option sizes: %w", err)
	}
	var out fileSizes
	for _, m := range mix {
		b, err := services.ParseSize(m.Name)
		if err != nil {
			return nil, fmt.Errorf("workload option sizes: %w", err)
		}
		out = append(out, ZeroWindowSize{Size: m.Name, Bytes: b})
	}
	slices.SortFunc(out, func(a, b ZeroWindowSize) int { return cmp.Compare(a.Bytes, b.Bytes) })
	return out, nil
}

func (f fileSizes) empty() []ZeroWindowSize { return slices.Clone(f) }

// nearest is the index of the size nearest to bytes on a log scale (-1 with no sizes or no bytes).
func (f fileSizes) nearest(bytes float64) int {
	best, dist := -1, math.Inf(1)
	for i, s := range f {
		if d := math.Abs(math.Log(bytes / float64(s.Bytes))); bytes > 0 && d < dist {
			best, dist = i, d
		}
	}
	return best
}

// SizeOf is the file size nearest to bytes on a log scale ("" without sizes): the size a download or a
// backend connection carried.
func (r ZeroWindowResult) SizeOf(bytes int64) string {
	if i := fileSizes(r.BySize).nearest(float64(bytes)); i >= 0 {
		return r.BySize[i].Size
	}
	return ""
}

// addDownloads adds the client's successful downloads to their sizes (by the bytes received, headers
// included) in every result.
func addDownloads(in *Input, sizes fileSizes, out ZeroWindows) error {
	if len(sizes) == 0 {
		return nil
	}
	return results.ReadRecords(filepath.Join(in.Dir, "records.jsonl"), func(r *results.Record) error {
		if r.Outcome != results.OutcomeOK {
			return nil
		}
		i := sizes.nearest(float64(r.BytesIn))
		if i < 0 {
			return nil
		}
		for j := range out {
			b := &out[j].BySize[i]
			b.Downloads++
			b.dl.Add(time.Duration(r.Total))
			b.fb.Add(time.Duration(r.FirstByte))
		}
		return nil
	})
}

func (zs ZeroWindows) summary() string {
	var parts []string
	for _, r := range zs {
		s := fmt.Sprintf("%s: proxy zero window on %d of %d backend connections (%.1f%%, %s [%.1f, %.1f]%%)",
			r.Host, r.WithZeroWindow, r.Conns, 100*r.Fraction, r.CIMethod, 100*r.CI.Lo, 100*r.CI.Hi)
		if r.RSS != nil {
			s += fmt.Sprintf("; proxy RSS peak %.1f MB", float64(r.RSS.Peak)/1e6)
		}
		for _, b := range r.BySize {
			s += fmt.Sprintf("; %s: %d/%d, download p50 %s", b.Size, b.WithZeroWindow, b.Conns, b.Download.P50)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func (zs ZeroWindows) columns() []results.Column {
	var cols []results.Column
	for _, r := range zs {
		for _, b := range r.BySize {
			cols = append(cols, results.Column{Name: "zero window " + b.Size,
				Value: fmt.Sprintf("%d/%d", b.WithZeroWindow, b.Conns)})
		}
		cols = append(cols, results.Column{Name: "zero window (95% Wilson)",
			Value: fmt.Sprintf("%d/%d [%.0f, %.0f]%%", r.WithZeroWindow, r.Conns, 100*r.CI.Lo, 100*r.CI.Hi)})
		if r.RSS != nil {
			cols = append(cols, results.Column{Name: "proxy RSS peak",
				Value: fmt.Sprintf("%.1f MB", float64(r.RSS.Peak)/1e6)})
		}
	}
	return cols
}
