package analyses

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/services"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/results"
)

// TimeWaitLen is how long Linux keeps a closed connection's port in TIME_WAIT: fixed at 60 s
// (TCP_TIMEWAIT_LEN); tcp_fin_timeout does not change it.
const TimeWaitLen = 60 * time.Second

// PortBudgetResult compares, for a proxy in tcp mode, the source-port budget's prediction with what happened.
type PortBudgetResult struct {
	Proxy string `json:"proxy"`
	// Ports is the number of (source address, port) pairs the proxy can use toward one server address.
	Ports int    `json:"ports"`
	Basis string `json:"basis"` // how Ports was counted
	// Lifetime is how long a port stays unusable after its connection closed: TimeWaitLen, the reuse delay
	// when tcp_tw_reuse lets connect() take over a TIME_WAIT port, or zero when HAProxy binds the ports
	// itself (its `source ip:range`) and timestamps are on: connect() from an explicitly bound port takes over
	// a TIME_WAIT at once (tcp_twsk_unique is called without a twp), so TIME_WAIT sets no limit.
	Lifetime time.Duration `json:"lifetime_ns"`
	// KernelPicks is true when connect() picks the ports (ip_local_port_range), false for HAProxy's range.
	KernelPicks bool `json:"kernel_picks_ports"`
	// TWFraction is the share of the proxy's connections toward the servers whose close left the TIME_WAIT
	// on the proxy (the proxy's FIN came first), from the capture on the proxy's host, over the connections
	// opened in the first EstimatedOver of the run, before any failure was possible (see twFraction). 1 when
	// no capture says otherwise. TWSample is how many connections it is over.
	TWFraction float64 `json:"tw_fraction"`
	TWSample   int     `json:"tw_sample"`
	// EstimatedOver is the start of the run whose connections TWFraction is estimated from (see twFraction).
	EstimatedOver time.Duration `json:"estimated_over_ns"`
	// HeldAtFirst counts the proxy's connections toward the servers, opened before the first failure, whose
	// port was still held then: in TIME_WAIT (the proxy's FIN came first) or not closed yet. The budget
	// says it is near Ports when the first failure comes. Zero without a failure or a capture.
	HeldAtFirst int `json:"held_at_first"`
	// Sustainable is Ports/Lifetime/TWFraction connections per second (0: no TIME_WAIT limit).
	Sustainable float64 `json:"sustainable_per_s"`
	Offered     float64 `json:"offered_per_s"`
	// PredictedFirst is when the first failure is due at the offered rate (Ports/(Offered*TWFraction));
	// zero when the offered rate is sustainable.
	PredictedFirst time.Duration `json:"predicted_first_ns"`
	// PredictedHalf is when half the ports are held, where the kernel picks them: connect() tries the even
	// ports of ip_local_port_range first (Linux 4.6+, inet_hash_connect) and, once they are all taken, walks
	// every one of them before each odd port it hands out. With a range of tens of thousands that walk costs
	// each connect() enough to stall a proxy's event loop: the long mode's default, wide-range and
	// tw-reuse-no-ts cells failed when 50.1-50.6% of the ports were held, not at the end of the budget.
	// Zero when not due within the offered rate.
	PredictedHalf time.Duration `json:"predicted_half_ns"`
	// MeasuredFirst is the intended start of the first failed attempt (zero: none failed).
	MeasuredFirst time.Duration `json:"measured_first_ns"`
	// FirstCheckFailure is the first failed health check in the proxy's log, with its status (L4CON, SOCKERR).
	FirstCheckFailure string `json:"first_check_failure,omitempty"`
	ConnectErrors     int    `json:"connect_errors"` // "no free ports" lines in the proxy's log
	// TimeWaitPeak is the most TIME_WAIT sockets the proxy held in a sample (needs a states probe).
	TimeWaitPeak int `json:"time_wait_peak"`
}

// PortBudget compares, for each proxy in tcp mode, the source-port budget's prediction with what happened
// (pathology 4, source-port exhaustion): how many (address, port) pairs the proxy has toward one server, how
// long each stays held after a close, the share of closes that leave the TIME_WAIT on the proxy (from the
// capture on the proxy's link), and when the first failure came.
var PortBudget = &Analyzer{
	Name:     "port_budget",
	Doc:      "source-port budget of each tcp-mode proxy: predicted against measured first failure",
	Requires: []*Analyzer{Capture},
	Run:      runPortBudget,
}

// PortBudgets is the port budget of every tcp-mode proxy of a cell, by service name.
type PortBudgets map[string]PortBudgetResult

func runPortBudget(in *Input) (Output, error) {
	s := &in.Cell.Scenario
	var first time.Duration
	err := results.ReadRecords(filepath.Join(in.Dir, "records.jsonl"), func(r *results.Record) error {
		if r.Failed() && (first == 0 || time.Duration(r.Intended) < first) {
			first = time.Duration(r.Intended)
		}
		return nil
	})
	if err != nil {
		return Output{}, err
	}
	capt, _ := in.ResultOf[Capture].(*CaptureResult)
	out := PortBudgets{}
	var o Output
	for _, sv := range s.Services {
		if !sv.IsProxy() || sv.Mode != "tcp" {
			continue
		}
		e := portBudget(in, sv)
		e.Offered = s.Workload.Rate
		e.MeasuredFirst = first
		var conns []serverConn
		if capt != nil {
			conns = capt.conns[sv.Host]
		}
		twFraction(conns, &e)
		if e.Lifetime > 0 {
			e.Sustainable = float64(e.Ports) / e.Lifetime.Seconds() / e.TWFraction
		}
		if s.Workload.Persistent == 0 && e.Lifetime > 0 {
			if e.Offered > e.Sustainable {
				e.PredictedFirst = time.Duration(float64(e.Ports) / (e.Offered * e.TWFraction) * float64(time.Second))
			}
			if e.KernelPicks && e.Offered > e.Sustainable/2 {
				e.PredictedHalf = time.Duration(float64(e.Ports) / 2 / (e.Offered * e.TWFraction) * float64(time.Second))
			}
		}
		fromProxyLog(in, sv, &e)
		e.TimeWaitPeak = timeWaitPeak(filepath.Join(in.Dir, "states-"+sv.Host+".jsonl"))
		out[sv.Name] = e
		if o.Summary != "" {
			o.Summary += "; "
		}
		o.Summary += e.String()
		o.Columns = append(o.Columns, e.columns()...)
	}
	if len(out) == 0 {
		return Output{}, nil
	}
	o.Value = out
	return o, nil
}

// columns are the budget's figures for the analysis table.
func (e PortBudgetResult) columns() []results.Column {
	pred, meas := "none", "none"
	if e.PredictedFirst > 0 {
		pred = fmt.Sprintf("%.2fs", e.PredictedFirst.Seconds())
	}
	if e.MeasuredFirst > 0 {
		meas = fmt.Sprintf("%.2fs", e.MeasuredFirst.Seconds())
	}
	return []results.Column{{Name: "proxy", Value: e.Proxy}, {Name: "ports", Value: fmt.Sprint(e.Ports)},
		{Name: "TIME_WAIT share", Value: fmt.Sprintf("%.0f%%", 100*e.TWFraction)},
		{Name: "predicted first failure", Value: pred}, {Name: "measured", Value: meas},
		{Name: "ports held then", Value: fmt.Sprint(e.HeldAtFirst)},
		{Name: "TIME_WAIT peak", Value: fmt.Sprint(e.TimeWaitPeak)}}
}

func (e PortBudgetResult) String() string {
	pred := "sustainable: no failure predicted"
	if e.PredictedFirst > 0 {
		pred = fmt.Sprintf("first failure predicted at %.2fs", e.PredictedFirst.Seconds())
	}
	if e.PredictedHalf > 0 {
		pred += fmt.Sprintf(" (half the ports held at %.2fs)", e.PredictedHalf.Seconds())
	}
	sustainable := fmt.Sprintf("sustainable %.0f conn/s", e.Sustainable)
	if e.Lifetime == 0 {
		sustainable = "no TIME_WAIT limit"
	}
	meas := "no failure"
	if e.MeasuredFirst > 0 {
		meas = fmt.Sprintf("first failure at %.2fs", e.MeasuredFirst.Seconds())
	}
	if e.MeasuredFirst > 0 && e.HeldAtFirst > 0 {
		meas += fmt.Sprintf(" with %d ports held", e.HeldAtFirst)
	}
	return fmt.Sprintf("ports of %s: %d (%s), lifetime %s, %.0f%% of %d server closes leave TIME_WAIT on the "+
		"proxy -> %s; offered %.0f/s: %s; measured: %s; TIME_WAIT peak %d; %d 'no free ports' errors; first "+
		"failed check %s", e.Proxy, e.Ports, e.Basis, e.Lifetime, 100*e.TWFraction, e.TWSample, sustainable,
		e.Offered, pred, meas, e.TimeWaitPeak, e.ConnectErrors, orNone(e.FirstCheckFailure))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// portBudget counts the proxy's usable (address, port) pairs toward one server, and their lifetime.
func portBudget(in *Input, sv spec.Service) PortBudgetResult {
	e := PortBudgetResult{Proxy: sv.Name, Lifetime: TimeWaitLen}
	sysctls := hostSysctls(&in.Cell.Scenario, sv.Host)
	lo, hi := 32768, 60999 // the kernel's default ip_local_port_range
	if r, ok := sysctls["net.ipv4.ip_local_port_range"]; ok {
		if f := strings.Fields(r); len(f) == 2 {
			lo, _ = strconv.Atoi(f[0])
			hi, _ = strconv.Atoi(f[1])
		}
	}
	e.Ports, e.Basis = hi-lo+1, fmt.Sprintf("ip_local_port_range %d-%d", lo, hi)
	e.KernelPicks = true
	if src := harness.ExpandAddrs(sv.Options["source"], in.Addrs[sv.Host]); strings.Contains(src, ":") {
		if a, b, ok := strings.Cut(src[strings.LastIndex(src, ":")+1:], "-"); ok {
			l, _ := strconv.Atoi(a)
			h, _ := strconv.Atoi(b)
			e.Ports, e.Basis, e.KernelPicks = h-l+1, "haproxy source port range "+src, false
		}
	}
	if list := harness.ExpandAddrs(sv.Options["sources"], in.Addrs[sv.Host]); list != "" {
		n := len(strings.Split(list, ","))
		e.Ports, e.Basis = e.Ports*n, fmt.Sprintf("%s x %d source addresses", e.Basis, n)
	}
	switch {
	case !e.KernelPicks && sysctls["net.ipv4.tcp_timestamps"] != "0":
		// measured: 300,000 connections at 2,500/s through 10,000 such ports, no failure, TIME_WAIT peak 8,778
		e.Lifetime = 0
		e.Basis += "; a connect() from a port HAProxy bound takes over its TIME_WAIT at once (timestamps on)"
	case sysctls["net.ipv4.tcp_tw_reuse"] != "1":
	case sysctls["net.ipv4.tcp_timestamps"] == "0":
		// connect() may take over a TIME_WAIT port only when the old connection carried timestamps
		// (tcp_twsk_unique checks tw_ts_recent_stamp), so without them reuse does not apply
		e.Basis += "; tcp_tw_reuse=1 but tcp_timestamps=0: no reuse"
	default:
		e.Lifetime = time.Second // tcp_tw_reuse_delay's default (1000 ms) on kernels that have it
		if d, err := strconv.Atoi(sysctls["net.ipv4.tcp_tw_reuse_delay"]); err == nil {
			e.Lifetime = time.Duration(d) * time.Millisecond
		}
	}
	return e
}

// hostSysctls are the sysctls the cell sets on a host.
func hostSysctls(s *spec.Scenario, name string) map[string]string {
	for _, h := range s.Hosts {
		if h.Name == name {
			return h.Sysctls
		}
	}
	return nil
}

// twFraction sets e.TWFraction, e.TWSample and e.EstimatedOver from the proxy's connections toward its
// servers seen by a capture on the proxy's host (fraction 1 without one: the worst case), and e.HeldAtFirst.
// It needs e.MeasuredFirst and e.Offered.
//
// The share is estimated only from connections opened before EstimatedOver = 40% of Ports/Offered: the
// earliest the range could run out if every close left its TIME_WAIT on the proxy. No failure can have come
// by then, so the estimate cannot know when (or whether) the failure came, and the prediction made from it
// can miss. Once ports run out the mix of closes changes (the proxy closes the clients itself), which is
// why a share counted up to the failure would not say how fast they ran out either.
func twFraction(conns []serverConn, e *PortBudgetResult) {
	e.TWFraction = 1
	if e.Offered > 0 && e.Ports > 0 {
		e.EstimatedOver = time.Duration(0.4 * float64(e.Ports) / e.Offered * float64(time.Second))
	}
	held, n, heldAtFirst := 0, 0, 0
	for _, sc := range conns {
		if e.MeasuredFirst > 0 && sc.start < e.MeasuredFirst && sc.held {
			heldAtFirst++
		}
		if e.EstimatedOver > 0 && sc.start >= e.EstimatedOver {
			continue
		}
		n++
		if sc.held {
			held++
		}
	}
	if e.MeasuredFirst > 0 {
		e.HeldAtFirst = heldAtFirst
	}
	if n == 0 {
		return
	}
	e.TWSample = n
	e.TWFraction = math.Max(float64(held)/float64(n), 0.01)
}

// fromProxyLog reads the proxy's log: "no free ports" errors and the first failed health check.
func fromProxyLog(in *Input, sv spec.Service, e *PortBudgetResult) {
	f, err := os.Open(filepath.Join(in.Dir, sv.Name, sv.Name+".log"))
	if err != nil {
		return
	}
	defer f.Close()
	l, err := services.ParseHAProxyLog(f)
	if err != nil {
		return
	}
	e.ConnectErrors = l.Count(services.EventConnectError)
	if ev, ok := l.First(services.EventCheckFailed); ok {
		e.FirstCheckFailure = ev.Status
		if !ev.Time.IsZero() {
			e.FirstCheckFailure += fmt.Sprintf(" at %.2fs", ev.Time.Sub(in.Epoch).Seconds())
		}
	}
}

// timeWaitPeak is the largest TIME_WAIT count in a states series (0 without one).
func timeWaitPeak(path string) int { return sampleTW(path, "").Peak }
