package peers

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// vegetaReport is the part of `vegeta report -type=json` the table uses (vegeta v12 lib.Metrics).
type vegetaReport struct {
	Latencies struct {
		P99 int64 `json:"99th"`
	} `json:"latencies"`
	Requests int64   `json:"requests"`
	Rate     float64 `json:"rate"` // requests per second over the attack's span: its issue rate
	Success  float64 `json:"success"`
}

// ParseVegeta reads `vegeta report -type=json`: attempts are its requests, the achieved rate its rate (the
// requests issued per second), failures the requests that were not successes, p99 its latency p99.
func ParseVegeta(data []byte) (GenStep, error) {
	var r vegetaReport
	if err := json.Unmarshal(data, &r); err != nil {
		return GenStep{}, fmt.Errorf("parse vegeta report: %w", err)
	}
	if r.Requests <= 0 {
		return GenStep{}, fmt.Errorf("parse vegeta report: no requests in %q", clip(data))
	}
	ok := int64(math.Round(r.Success * float64(r.Requests)))
	return GenStep{Tool: "vegeta", Attempts: r.Requests, Achieved: r.Rate, Failed: r.Requests - ok,
		P99: time.Duration(r.Latencies.P99), LagP99: -1}, nil
}

var (
	httperfTotalRE  = regexp.MustCompile(`(?m)^Total: connections (\d+) requests (\d+) replies (\d+) test-duration ([0-9.]+) s`)
	httperfStatusRE = regexp.MustCompile(`(?m)^Reply status: 1xx=(\d+) 2xx=(\d+) 3xx=(\d+) 4xx=(\d+) 5xx=(\d+)`)
	httperfErrorsRE = regexp.MustCompile(`(?m)^Errors: fd-unavail (\d+) addrunavail (\d+) ftab-full (\d+) other (\d+)`)
	httperfHistRE   = regexp.MustCompile(`^\s*([0-9.]+) (\d+)$`)
)

// ParseHttperf reads httperf's summary: the achieved rate is the connections it opened per second of its test
// duration; attempts are those connections plus the ones it could not open (its fd-unavail, addrunavail and
// ftab-full errors: httperf's select() loop holds at most 1,024 descriptors); failures are the attempts without
// a 2xx reply; p99 comes from its connection lifetime histogram (printed with -v -v, 1 ms bins), -1 without one.
func ParseHttperf(out string) (GenStep, error) {
	m := httperfTotalRE.FindStringSubmatch(out)
	st := httperfStatusRE.FindStringSubmatch(out)
	em := httperfErrorsRE.FindStringSubmatch(out)
	if m == nil || st == nil || em == nil {
		return GenStep{}, fmt.Errorf("parse httperf: no Total, Reply status or Errors lines in %q", clip([]byte(out)))
	}
	conns, _ := strconv.ParseInt(m[1], 10, 64)
	dur, _ := strconv.ParseFloat(m[4], 64)
	ok, _ := strconv.ParseInt(st[2], 10, 64)
	if conns <= 0 || dur <= 0 {
		return GenStep{}, fmt.Errorf("parse httperf: %d connections in %g s", conns, dur)
	}
	unopened := int64(0)
	for _, f := range em[1:4] {
		n, _ := strconv.ParseInt(f, 10, 64)
		unopened += n
	}
	p99, err := httperfP99(out)
	if err != nil {
		return GenStep{}, err
	}
	return GenStep{Tool: "httperf", Attempts: conns + unopened, Achieved: float64(conns) / dur,
		Failed: conns + unopened - ok, P99: p99, LagP99: -1}, nil
}

// httperfP99 is the p99 of the connection lifetime histogram (the upper edge of the bin it falls in).
func httperfP99(out string) (time.Duration, error) {
	_, hist, found := strings.Cut(out, "Connection lifetime histogram (time in ms):\n")
	if !found {
		return -1, nil
	}
	type bin struct {
		mid float64
		n   int64
	}
	var bins []bin
	var total int64
	sc := bufio.NewScanner(strings.NewReader(hist))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == ":" {
			continue
		}
		m := httperfHistRE.FindStringSubmatch(line)
		if m == nil {
			break
		}
		mid, _ := strconv.ParseFloat(m[1], 64)
		n, _ := strconv.ParseInt(m[2], 10, 64)
		bins = append(bins, bin{mid, n})
		total += n
	}
	if total == 0 {
		return 0, fmt.Errorf("parse httperf: empty connection lifetime histogram")
	}
	rank := int64(math.Ceil(0.99 * float64(total)))
	var seen int64
	for _, b := range bins {
		if seen += b.n; seen >= rank {
			return time.Duration((b.mid + 0.5) * float64(time.Millisecond)), nil
		}
	}
	return 0, fmt.Errorf("parse httperf: histogram does not add up")
}

// TcpdumpStats is what tcpdump prints on exit.
type TcpdumpStats struct {
	Captured, Received, Dropped int64
}

var (
	tcpdumpCapturedRE = regexp.MustCompile(`(\d+) packets? captured`)
	tcpdumpReceivedRE = regexp.MustCompile(`(\d+) packets? received by filter`)
	tcpdumpDroppedRE  = regexp.MustCompile(`(\d+) packets? dropped by kernel`)
)

// ParseTcpdump reads the three counters tcpdump prints on stderr when it stops; all three must be there.
func ParseTcpdump(stderr string) (TcpdumpStats, error) {
	var st TcpdumpStats
	for _, f := range []struct {
		re  *regexp.Regexp
		dst *int64
	}{{tcpdumpCapturedRE, &st.Captured}, {tcpdumpReceivedRE, &st.Received}, {tcpdumpDroppedRE, &st.Dropped}} {
		m := f.re.FindStringSubmatch(stderr)
		if m == nil {
			return st, fmt.Errorf("parse tcpdump: no %q in %q", f.re, clip([]byte(stderr)))
		}
		*f.dst, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return st, nil
}

// CountSS counts the sockets of `ss -tan` output per state (its first column: ESTAB, TIME-WAIT, LISTEN, ...),
// after checking the header line.
func CountSS(out string) (map[string]int, error) {
	sc := bufio.NewScanner(strings.NewReader(out))
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "State") {
		return nil, fmt.Errorf("parse ss: no State header in %q", clip([]byte(out)))
	}
	counts := map[string]int{}
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			return nil, fmt.Errorf("parse ss: short line %q", sc.Text())
		}
		counts[f[0]]++
	}
	return counts, sc.Err()
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
