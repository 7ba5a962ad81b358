package analyses

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/faultlab/faultlab/capture"
	"github.com/faultlab/faultlab/results"
)

// TimeWaitSide says which side of a checker's short connections keeps the TIME_WAIT (pathology 3, seeds/001):
// a checker (a proxy's active health checks, or the lab's own check workload) opens a connection per check
// toward its servers; whichever end the TCP state machine leaves in TIME_WAIT holds it for 60 s. Two
// instruments answer independently: the kernel's own TIME_WAIT count on the checker's and the servers' hosts
// (states probes), and the FINs in the capture, whose acknowledgement numbers say which end each close left
// in TIME_WAIT (capture.Conn.TimeWait). The prediction is the measured check rate times the capture's
// share of closes that leave the TIME_WAIT on a side, times how long a TIME_WAIT lasts (60 s, or the time
// since the first check when shorter), at the last sample.
var TimeWaitSide = &Analyzer{
	Name:     "timewait_side",
	Doc:      "which side of a checker's connections keeps the TIME_WAIT: kernel counts against the capture",
	Requires: []*Analyzer{Capture},
	Run:      runTimeWaitSide,
}

// TimeWaitSideResult is one checker's side of the story, for one capture link.
type TimeWaitSideResult struct {
	Link    string       `json:"link"`    // the capture link ("<host>-<iface>")
	Pair    string       `json:"pair"`    // role pair, e.g. "proxy>backend"
	Checker string       `json:"checker"` // the host that opened the connections
	Server  string       `json:"server"`  // the host of the servers
	Closes  PairCloses   `json:"closes"`
	Rate    float64      `json:"checks_per_s"` // complete connections per second over the capture
	Sampled [2]TWSampled `json:"sampled"`      // kernel's TIME_WAIT count: [checker, server]
	// Predicted is the TIME_WAIT count each host should hold at the last sample, [checker, server], from every
	// role pair the link carried (predictTW).
	Predicted [2]float64 `json:"predicted"`
	// Counted is the TIME_WAIT count each host should hold at the last sample by the capture's own clock: the
	// closes that left one there within a TIME_WAIT's life before the sample (countTW). It differs from
	// Predicted where the share of closes leaving the TIME_WAIT on a side drifts during the run.
	Counted [2]float64 `json:"counted"`
	// MaxTW is each host's net.ipv4.tcp_max_tw_buckets when the scenario sets it (0: the kernel's default),
	// and Overflow the kernel's count of TIME_WAITs it refused for that limit over the load
	// (TcpExt.TCPTimeWaitOverflow in counters.json): closes that skipped TIME_WAIT altogether.
	MaxTW    [2]int   `json:"max_tw_buckets,omitempty"`
	Overflow [2]int64 `json:"tw_overflow"`
}

// TWSampled is a host's TIME_WAIT count from its states probe.
type TWSampled struct {
	Host    string        `json:"host"`
	Samples int           `json:"samples"`
	Last    int           `json:"last"`       // at the last sample
	LastAt  time.Duration `json:"last_at_ns"` // when that was, after the epoch
	Peak    int           `json:"peak"`
}

// TimeWaitSides lists a cell's results, one per link and checker pair.
type TimeWaitSides []TimeWaitSideResult

// checkerPairs are the role pairs whose initiator is a checker: a proxy toward its servers, the client (the
// lab's check workload) toward backends.
var checkerPairs = []string{string(capture.RoleProxy) + ">" + string(capture.RoleBackend),
	string(capture.RoleClient) + ">" + string(capture.RoleBackend)}

func runTimeWaitSide(in *Input) (Output, error) {
	capt, _ := in.ResultOf[Capture].(*CaptureResult)
	if capt == nil {
		return Output{}, fmt.Errorf("needs a capture on the checker's or the servers' link (probes.capture)")
	}
	hostOf := roleHosts(in)
	var out TimeWaitSides
	var o Output
	links := make([]string, 0, len(capt.Pairs))
	for l := range capt.Pairs {
		links = append(links, l)
	}
	sort.Strings(links)
	counters := readCounters(in.Dir)
	for _, link := range links {
		for _, pair := range checkerPairs {
			p, ok := capt.Pairs[link][pair]
			if !ok || p.Conns == 0 {
				continue
			}
			initRole := pair[:len(pair)-len(">"+string(capture.RoleBackend))]
			r := TimeWaitSideResult{Link: link, Pair: pair, Checker: hostOf[capture.Role(initRole)],
				Server: hostOf[capture.RoleBackend], Closes: *p}
			r.Rate = p.rate()
			for i, h := range []string{r.Checker, r.Server} {
				r.Sampled[i] = sampleTW(filepath.Join(in.Dir, "states-"+h+".jsonl"), h)
			}
			r.MaxTW, r.Overflow = twLimits(in, counters, [2]string{r.Checker, r.Server})
			if at := r.Sampled[0].LastAt; at > 0 {
				r.Predicted = predictTW(capt.Pairs[link], hostOf, [2]string{r.Checker, r.Server}, at)
				r.Counted = countTW(capt.Pairs[link], hostOf, [2]string{r.Checker, r.Server}, at)
			}
			out = append(out, r)
			if o.Summary != "" {
				o.Summary += "; "
			}
			o.Summary += r.String()
			o.Columns = append(o.Columns, r.columns()...)
		}
	}
	if len(out) == 0 {
		return Output{}, nil
	}
	o.Value = out
	return o, nil
}

// predictTW is the TIME_WAIT count each of hosts should hold at time at: over every role pair on the link
// (the checker's connections, and others such as the client's through the proxy), the pair's rate x the
// share of its closes that leave the TIME_WAIT on an end x how long those have been piling up (at most a
// TIME_WAIT's life), credited to the host of that end.
func predictTW(pairs map[string]*PairCloses, hostOf map[capture.Role]string, hosts [2]string,
	at time.Duration) [2]float64 {
	return perHost(pairs, hostOf, hosts, func(p *PairCloses, end int) float64 {
		rate := p.rate()
		if rate == 0 {
			return 0
		}
		tw := [2]int{p.TWInitiator, p.TWResponder}[end]
		return rate * float64(tw) / float64(p.Conns) * min(at-p.First, TimeWaitLen).Seconds()
	})
}

// countTW is the TIME_WAIT count each of hosts should hold at time at by the capture: over every role pair on
// the link, the closes that left a TIME_WAIT on an end during the TIME_WAIT's life before at, credited to the
// host of that end.
func countTW(pairs map[string]*PairCloses, hostOf map[capture.Role]string, hosts [2]string,
	at time.Duration) [2]float64 {
	return perHost(pairs, hostOf, hosts, func(p *PairCloses, end int) float64 {
		return p.TWBetween(end, at-TimeWaitLen, at)
	})
}

// perHost sums f over every role pair's two ends (0 initiator, 1 responder), credited to the one of hosts
// that has the end's role.
func perHost(pairs map[string]*PairCloses, hostOf map[capture.Role]string, hosts [2]string,
	f func(p *PairCloses, end int) float64) [2]float64 {
	var out [2]float64
	for key, p := range pairs {
		init, resp, ok := strings.Cut(key, ">")
		if !ok {
			continue
		}
		for end, role := range []string{init, resp} {
			for i, h := range hosts {
				if hostOf[capture.Role(role)] == h {
					out[i] += f(p, end)
				}
			}
		}
	}
	return out
}

// readCounters reads the cell's counters.json (nil when the runner recorded none).
func readCounters(dir string) map[string]map[string]int64 {
	var counters map[string]map[string]int64
	if b, err := os.ReadFile(filepath.Join(dir, results.CountersFile)); err == nil {
		_ = json.Unmarshal(b, &counters)
	}
	return counters
}

// twLimits gives hosts' tcp_max_tw_buckets from the cell's scenario and their TIME_WAIT overflow counts from
// the cell's counters (zeros where there are none).
func twLimits(in *Input, counters map[string]map[string]int64, hosts [2]string) (limit [2]int, overflow [2]int64) {
	for i, h := range hosts {
		overflow[i] = counters[h]["TcpExt.TCPTimeWaitOverflow"]
		for _, sh := range in.Cell.Scenario.Hosts {
			if sh.Name == h {
				limit[i], _ = strconv.Atoi(sh.Sysctls["net.ipv4.tcp_max_tw_buckets"])
			}
		}
	}
	return limit, overflow
}

// rate is the pair's connections per second between the first and the last start (0 for fewer than two).
func (p *PairCloses) rate() float64 {
	if p.Conns < 2 || p.Last <= p.First {
		return 0
	}
	return float64(p.Conns-1) / (p.Last - p.First).Seconds()
}

func (r TimeWaitSideResult) share(tw int) float64 {
	if r.Closes.Conns == 0 {
		return 0
	}
	return float64(tw) / float64(r.Closes.Conns)
}

func (r TimeWaitSideResult) String() string {
	c := r.Closes
	return fmt.Sprintf("%s %s (%s): %d checks at %.0f/s; first FIN from the checker %d, from the server %d, "+
		"RST %d; TIME_WAIT by the FINs: checker %.1f%%, server %.1f%% (%d simultaneous closes); kernel "+
		"TIME_WAIT at %.1fs: checker %d (predicted %.0f, counted %.0f), server %d (predicted %.0f, counted %.0f)",
		r.Link, r.Pair,
		r.Checker, c.Conns, r.Rate, c.InitiatorFirst, c.ResponderFirst, c.ResetFirst, 100*r.share(c.TWInitiator),
		100*r.share(c.TWResponder), c.Simultaneous, r.Sampled[0].LastAt.Seconds(), r.Sampled[0].Last,
		r.Predicted[0], r.Counted[0], r.Sampled[1].Last, r.Predicted[1], r.Counted[1]) + r.overflowString()
}

// overflowString reports TIME_WAITs the kernel refused (tcp_max_tw_buckets), when it refused any.
func (r TimeWaitSideResult) overflowString() string {
	var s string
	for i, what := range []string{"checker", "server"} {
		if r.Overflow[i] > 0 {
			s += fmt.Sprintf("; %s refused %d TIME_WAITs over tcp_max_tw_buckets %d", what, r.Overflow[i], r.MaxTW[i])
		}
	}
	return s
}

func (r TimeWaitSideResult) columns() []results.Column {
	return []results.Column{{Name: "checker", Value: r.Checker}, {Name: "checks/s", Value: fmt.Sprintf("%.0f", r.Rate)},
		{Name: "TW on checker (FINs)", Value: fmt.Sprintf("%.1f%%", 100*r.share(r.Closes.TWInitiator))},
		{Name: "simultaneous", Value: fmt.Sprint(r.Closes.Simultaneous)},
		{Name: "TW checker: kernel / predicted / counted", Value: fmt.Sprintf("%d / %.0f / %.0f", r.Sampled[0].Last,
			r.Predicted[0], r.Counted[0])},
		{Name: "TW server: kernel / predicted / counted", Value: fmt.Sprintf("%d / %.0f / %.0f", r.Sampled[1].Last,
			r.Predicted[1], r.Counted[1])},
		{Name: "TW overflow checker/server", Value: fmt.Sprintf("%d / %d", r.Overflow[0], r.Overflow[1])}}
}

// sampleTW reads a host's states series (nothing when there is none).
func sampleTW(path, host string) TWSampled {
	s := TWSampled{Host: host}
	f, err := os.Open(path)
	if err != nil {
		return s
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var smp struct {
			T      int64          `json:"t_ns"`
			States map[string]int `json:"states"`
		}
		if json.Unmarshal(sc.Bytes(), &smp) != nil {
			continue
		}
		tw := smp.States["time_wait"]
		s.Samples++
		s.Last, s.LastAt, s.Peak = tw, time.Duration(smp.T), max(s.Peak, tw)
	}
	return s
}

// roleHosts maps each role to a host that has it (the first in the scenario's order).
func roleHosts(in *Input) map[capture.Role]string {
	s := &in.Cell.Scenario
	out := map[capture.Role]string{capture.RoleClient: s.Workload.From}
	for _, sv := range s.Services {
		r := capture.RoleBackend
		if sv.IsProxy() {
			r = capture.RoleProxy
		}
		if _, ok := out[r]; !ok {
			out[r] = sv.Host
		}
	}
	return out
}
