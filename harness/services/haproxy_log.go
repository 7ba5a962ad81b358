package services

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// haproxyLogData is the logging part of a haproxy configuration.
type haproxyLogData struct {
	LogLevel, LogFormat string
	LogLines            []string // logging lines of the defaults section
}

// syslogLevels are haproxy's log levels, most severe first.
var syslogLevels = []string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}

// logOptions reads the haproxy driver's logging options:
//   - log_level: level of the log on stdout (default notice: process events, server state changes, connect
//     errors). info or debug adds a line per connection (`option tcplog` or `option httplog`) and drops
//     `option dontlognull`, so that connections which failed before any data are logged too (in tcp mode, a
//     MySQL client waits for the server's greeting: a failed connect toward the server is a "null" connection).
//   - log_health: true logs every health check that changes a server's state (`option log-health-checks`).
//
// Either option sends the proxies' events to the log (`log global`) in RFC 5424 format, whose timestamps
// (microseconds) ParseHAProxyLog reads; without them the log stays the quiet raw one of the reload scenario.
func logOptions(cfg HAProxyConfig, d *haproxyLogData) []error {
	var errs []error
	d.LogLevel, d.LogFormat = "notice", "raw"
	_, setLevel := cfg.Options["log_level"]
	if setLevel {
		d.LogLevel = strings.TrimSpace(cfg.Options["log_level"])
		if !slices.Contains(syslogLevels, d.LogLevel) {
			errs = append(errs, fmt.Errorf("option log_level: %q is not one of %s", d.LogLevel,
				strings.Join(syslogLevels, ", ")))
		}
	}
	health, err := boolOption(cfg.Options, "log_health", false)
	if err != nil {
		errs = append(errs, err)
	}
	if setLevel || health {
		d.LogFormat, d.LogLines = "rfc5424", []string{"log global"}
	}
	if d.LogLevel == "info" || d.LogLevel == "debug" {
		d.LogLines = append(d.LogLines, "option "+cfg.Mode+"log")
	} else {
		d.LogLines = append(d.LogLines, "option dontlognull")
	}
	if health {
		d.LogLines = append(d.LogLines, "option log-health-checks")
	}
	return errs
}

// HAProxyEventKind classifies a line of a haproxy log.
type HAProxyEventKind string

const (
	EventServerUp    HAProxyEventKind = "server_up"    // "Server be/s0 is UP"
	EventServerDown  HAProxyEventKind = "server_down"  // "Server be/s0 is DOWN"
	EventCheckPassed HAProxyEventKind = "check_passed" // "Health check for server be/s0 succeeded"
	EventCheckFailed HAProxyEventKind = "check_failed" // "Health check for server be/s0 failed"
	// EventConnectError is haproxy's own connect() failure toward a server: "Connect() failed for backend be:
	// no free ports." (EADDRNOTAVAIL or EAGAIN) or "local address already in use" (EADDRINUSE).
	EventConnectError HAProxyEventKind = "connect_error"
	// EventConn is a connection log line (tcp mode's tcplog) whose server side was connected, EventConnFailed
	// one whose connection to the server was never established (connect time -1); State has the
	// termination state, e.g. "SC" (server refused or failed) or "RC" (a local resource: source ports).
	EventConn       HAProxyEventKind = "conn"
	EventConnFailed HAProxyEventKind = "conn_failed"
)

// HAProxyEvent is one line of interest in a haproxy log.
type HAProxyEvent struct {
	// Time is the line's timestamp: the RFC 5424 header's, else a connection line's accept date; zero when
	// the line carries none (raw format, haproxy's own stderr).
	Time   time.Time
	Kind   HAProxyEventKind
	Server string // "be/s0"; the backend for EventConnectError
	// Status is a health check's status code as on the stats page (L4OK, L4CON, L4TOUT, SOCKERR, L6RSP, L7OK,
	// L7STS, ...), or a connection line's termination state.
	Status string
	// Info is the check's info ("Connection refused", "no free ports") or the connect error's reason.
	Info string
	// State is the server's state a health check or state change left: "UP", "DOWN" or empty.
	State string
	Msg   string // the message, without its syslog header
}

// HAProxyLog is the parsed log of a haproxy service.
type HAProxyLog struct {
	Events []HAProxyEvent
	// Lines is the number of lines read; Syslog tells whether some had an RFC 5424 header, in which case the
	// plain lines were haproxy's stderr copies of the same events and were skipped.
	Lines  int
	Syslog bool
}

// checkStatuses maps the reasons haproxy prints for health checks to its status codes.
var checkStatuses = map[string]string{
	"Socket error": "SOCKERR", "Layer4 check passed": "L4OK", "Layer4 timeout": "L4TOUT",
	"Layer4 connection problem": "L4CON", "Layer6 check passed": "L6OK", "Layer6 timeout": "L6TOUT",
	"Layer6 invalid response": "L6RSP", "Layer7 timeout": "L7TOUT", "Layer7 invalid response": "L7RSP",
	"Layer7 check passed": "L7OK", "Layer7 check conditionally passed": "L7OKC", "Layer7 wrong status": "L7STS",
	"Health analyze": "HANA", "External check error": "PROCERR", "External check timeout": "PROCTOUT",
}

var (
	rfc5424Re = regexp.MustCompile(`^<\d+>1 (\S+) \S+ \S+ \S+ \S+ \S+ (.*)$`)
	stderrRe  = regexp.MustCompile(`^\[(?:NOTICE|WARNING|ALERT)\]\s+\(\d+\) : (.*)$`)
	checkRe   = regexp.MustCompile(`^Health check for (?:backup )?server (\S+) (succeeded|failed|conditionally succeeded), ` +
		`reason: ([^,]+)(?:, code: \d+)?(?:, info: "([^"]*)")?(?:, check duration: [^,]+)?(?:, status: \d+/\d+ (UP|DOWN))?`)
	serverRe  = regexp.MustCompile(`^(?:Backup )?Server (\S+) is (UP|DOWN)\b(?:, reason: ([^,]+)(?:, code: \d+)?(?:, info: "([^"]*)")?)?`)
	connErrRe = regexp.MustCompile(`^Connect\(\) failed for backend (\S+): (.+?)\.?$`)
	// tcplog: %ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts ...
	connRe = regexp.MustCompile(`^\S+ \[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3})\] \S+ (\S+) -?\d+/(-?\d+)/\+?-?\d+ \+?\d+ (\S\S)`)
)

// ParseHAProxyLog parses a haproxy service's log (stdout and stderr, as the driver writes it to LogPath).
func ParseHAProxyLog(r io.Reader) (*HAProxyLog, error) {
	l := &HAProxyLog{}
	var plain []HAProxyEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l.Lines++
		line := strings.TrimRight(sc.Text(), "\r")
		if m := rfc5424Re.FindStringSubmatch(line); m != nil {
			l.Syslog = true
			if ev, ok := parseHAProxyMessage(m[2]); ok {
				ev.Msg = m[2]
				if t, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
					ev.Time = t
				}
				l.Events = append(l.Events, ev)
			}
			continue
		}
		if m := stderrRe.FindStringSubmatch(line); m != nil {
			line = m[1]
		}
		if ev, ok := parseHAProxyMessage(line); ok {
			ev.Msg = line
			plain = append(plain, ev)
		}
	}
	if err := sc.Err(); err != nil {
		return l, fmt.Errorf("read haproxy log: %w", err)
	}
	if !l.Syslog {
		l.Events = plain
	}
	return l, nil
}

// parseHAProxyMessage classifies one log message (without its syslog header).
func parseHAProxyMessage(msg string) (HAProxyEvent, bool) {
	if m := checkRe.FindStringSubmatch(msg); m != nil {
		kind := EventCheckPassed
		if m[2] == "failed" {
			kind = EventCheckFailed
		}
		return HAProxyEvent{Kind: kind, Server: m[1], Status: checkStatus(m[3]), Info: m[4], State: m[5]}, true
	}
	if m := serverRe.FindStringSubmatch(msg); m != nil {
		ev := HAProxyEvent{Kind: EventServerUp, Server: m[1], Info: m[4], State: m[2]}
		if m[2] == "DOWN" {
			ev.Kind = EventServerDown
		}
		if m[3] != "" {
			ev.Status = checkStatus(m[3])
		}
		return ev, true
	}
	if m := connErrRe.FindStringSubmatch(msg); m != nil {
		return HAProxyEvent{Kind: EventConnectError, Server: m[1], Info: m[2]}, true
	}
	if m := connRe.FindStringSubmatch(msg); m != nil {
		ev := HAProxyEvent{Kind: EventConn, Server: m[2], Status: m[4]}
		if tc, _ := strconv.Atoi(m[3]); tc < 0 {
			ev.Kind = EventConnFailed
		}
		ev.Time, _ = time.ParseInLocation("02/Jan/2006:15:04:05.000", m[1], time.Local)
		return ev, true
	}
	return HAProxyEvent{}, false
}

// checkStatus is the status code of a check reason, the reason itself when unknown.
func checkStatus(reason string) string {
	if s, ok := checkStatuses[strings.TrimSpace(reason)]; ok {
		return s
	}
	return strings.TrimSpace(reason)
}

// Count is the number of events of kind.
func (l *HAProxyLog) Count(kind HAProxyEventKind) int {
	n := 0
	for _, ev := range l.Events {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// ByStatus counts the events of kind by Status (health-check failures by SOCKERR, L4CON, ...; connection
// lines by termination state).
func (l *HAProxyLog) ByStatus(kind HAProxyEventKind) map[string]int {
	out := map[string]int{}
	for _, ev := range l.Events {
		if ev.Kind == kind {
			out[ev.Status]++
		}
	}
	return out
}

// Series counts the events of kind per bucket from epoch: element i counts [epoch+i*bucket,
// epoch+(i+1)*bucket). Events before epoch or without a time are left out.
func (l *HAProxyLog) Series(kind HAProxyEventKind, epoch time.Time, bucket time.Duration) []int {
	var out []int
	for _, ev := range l.Events {
		if ev.Kind != kind || ev.Time.IsZero() || ev.Time.Before(epoch) || bucket <= 0 {
			continue
		}
		i := int(ev.Time.Sub(epoch) / bucket)
		for len(out) <= i {
			out = append(out, 0)
		}
		out[i]++
	}
	return out
}

// ServerState is the state of server ("be/s0") after the last health check or state change that named it:
// "UP", "DOWN", or empty when none did.
func (l *HAProxyLog) ServerState(server string) string {
	state := ""
	for _, ev := range l.Events {
		if ev.Server == server && ev.State != "" {
			state = ev.State
		}
	}
	return state
}

// First is the first event of kind, false when there is none.
func (l *HAProxyLog) First(kind HAProxyEventKind) (HAProxyEvent, bool) {
	for _, ev := range l.Events {
		if ev.Kind == kind {
			return ev, true
		}
	}
	return HAProxyEvent{}, false
}
