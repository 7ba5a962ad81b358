package services

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/faultlab/faultlab/harness"
)

// CheckReport is what a proxy's active health checks say about its servers when asked: the checker's own
// account, beside what the capture and the kernel show.
type CheckReport struct {
	Servers int `json:"servers"`
	Up      int `json:"up"`
	Down    int `json:"down"`
	// Failing is how many servers' latest check failed.
	Failing int `json:"failing"`
	// Failed is the checker's count of failed checks since it started, where it keeps one (HAProxy's
	// chkfail); -1 where it keeps none (Tengine's check module counts consecutive failures only).
	Failed int64 `json:"failed"`
}

func (r CheckReport) String() string {
	s := fmt.Sprintf("%d servers: %d up, %d down, %d failing their latest check", r.Servers, r.Up, r.Down, r.Failing)
	if r.Failed >= 0 {
		s += fmt.Sprintf(", %d failed checks in all", r.Failed)
	}
	return s
}

// CheckReporter is a proxy whose active health checks can be asked for their state. CheckReport fails with
// ErrNoChecks when the proxy runs none.
type CheckReporter interface {
	CheckReport(ctx context.Context) (CheckReport, error)
}

// ErrNoChecks: the proxy was configured without health checks.
var ErrNoChecks = errors.New("no health checks configured")

var (
	_ CheckReporter = (*Tengine)(nil)
	_ CheckReporter = (*HAProxy)(nil)
)

// CheckReport asks Tengine's check module (its check_status page, as JSON) for the servers' states.
func (t *Tengine) CheckReport(ctx context.Context) (CheckReport, error) {
	if !t.checks {
		return CheckReport{}, fmt.Errorf("tengine %s: %w", t.cfg.Name, ErrNoChecks)
	}
	body, err := httpGetIn(ctx, t.h, t.cfg.Bind.String(), "/status?format=json")
	if err != nil {
		return CheckReport{}, fmt.Errorf("tengine %s check status: %w", t.cfg.Name, err)
	}
	return parseTengineStatus(body)
}

// parseTengineStatus reads the check module's JSON status: {"servers": {"total": N, "server": [{"status":
// "up", "fall": 0, ...}]}}.
func parseTengineStatus(body []byte) (CheckReport, error) {
	var st struct {
		Servers struct {
			Total  int `json:"total"`
			Server []struct {
				Status string `json:"status"`
				Fall   int    `json:"fall"`
			} `json:"server"`
		} `json:"servers"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return CheckReport{}, fmt.Errorf("parse check status: %w", err)
	}
	r := CheckReport{Servers: st.Servers.Total, Failed: -1}
	for _, s := range st.Servers.Server {
		switch s.Status {
		case "up":
			r.Up++
		case "down":
			r.Down++
		}
		if s.Fall > 0 {
			r.Failing++
		}
	}
	return r, nil
}

// CheckReport asks haproxy (`show stat` on its admin socket) for its servers' check states and counts.
func (x *HAProxy) CheckReport(ctx context.Context) (CheckReport, error) {
	if !x.checks {
		return CheckReport{}, fmt.Errorf("haproxy %s: %w", x.cfg.Name, ErrNoChecks)
	}
	out, err := adminCommand(ctx, filepath.Join(x.dir, x.adminSock), "show stat")
	if err != nil {
		return CheckReport{}, fmt.Errorf("haproxy %s check status: %w", x.cfg.Name, err)
	}
	return parseHAProxyStat(out)
}

// parseHAProxyStat reads `show stat` CSV: one row per server of the backend "be", with status (UP, DOWN,
// "no check"), chkfail and check_status (L7OK, L4CON, ...; "* " while a check runs).
func parseHAProxyStat(out string) (CheckReport, error) {
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# "))).ReadAll()
	if err != nil || len(rows) < 1 {
		return CheckReport{}, fmt.Errorf("parse show stat: %v", err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	for _, c := range []string{"pxname", "svname", "status", "chkfail", "check_status"} {
		if _, ok := col[c]; !ok {
			return CheckReport{}, fmt.Errorf("parse show stat: no column %s", c)
		}
	}
	r := CheckReport{}
	for _, row := range rows[1:] {
		if len(row) != len(rows[0]) || row[col["pxname"]] != "be" || row[col["svname"]] == "BACKEND" {
			continue
		}
		r.Servers++
		switch st := row[col["status"]]; {
		case strings.HasPrefix(st, "UP"):
			r.Up++
		case strings.HasPrefix(st, "DOWN"):
			r.Down++
		}
		if cs := strings.TrimPrefix(row[col["check_status"]], "* "); cs != "" && !strings.HasSuffix(cs, "OK") {
			r.Failing++
		}
		n, _ := strconv.ParseInt(row[col["chkfail"]], 10, 64)
		r.Failed += n
	}
	return r, nil
}

// adminCommand sends one command to a haproxy stats socket and returns its answer.
func adminCommand(ctx context.Context, path, cmd string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	return string(b), err
}

// httpGetIn fetches path from addr over HTTP/1.0 with a socket made inside h's namespace, and returns the
// body of a 200 answer.
func httpGetIn(ctx context.Context, h harness.NetnsHost, addr, path string) ([]byte, error) {
	var conn net.Conn
	err := h.Do(func() (err error) {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, addr); err != nil {
		return nil, err
	}
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if f := strings.Fields(status); len(f) < 2 || f[1] != "200" {
		return nil, fmt.Errorf("GET %s: %s", path, strings.TrimSpace(status))
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(line) == "" {
			break
		}
	}
	return io.ReadAll(br)
}
