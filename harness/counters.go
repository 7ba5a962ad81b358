package harness

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// TCPCounters are the kernel's TCP statistics of one network namespace, by "<group>.<name>" as nstat names
// them (e.g. "TcpExt.TCPTimeWaitOverflow", "TcpExt.ListenOverflows", "Tcp.AttemptFails"): the Tcp group of
// /proc/net/snmp and the TcpExt group of /proc/net/netstat. The kernel keeps them per namespace.
type TCPCounters map[string]int64

// counterFiles are the files and groups ReadTCPCounters reads, relative to a thread's /proc net directory.
var counterFiles = map[string][]string{"snmp": {"Tcp"}, "netstat": {"TcpExt"}}

// ReadTCPCounters reads h's TCP counters. /proc/net follows the process's namespace, not the thread's, so
// the files are read through /proc/thread-self/net on h's switched thread.
func ReadTCPCounters(h NetnsHost) (TCPCounters, error) {
	out := TCPCounters{}
	err := h.Do(func() error {
		for file, groups := range counterFiles {
			f, err := os.Open("/proc/thread-self/net/" + file)
			if err != nil {
				return err
			}
			err = parseInto(f, groups, out)
			f.Close()
			if err != nil {
				return fmt.Errorf("parse /proc/net/%s: %w", file, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read tcp counters of %s: %w", h.Name(), err)
	}
	return out, nil
}

// ParseTCPCounters reads the header/value line pairs of a /proc/net/snmp-style file, for groups.
func ParseTCPCounters(r io.Reader, groups []string) (TCPCounters, error) {
	out := TCPCounters{}
	return out, parseInto(r, groups, out)
}

func parseInto(r io.Reader, groups []string, out TCPCounters) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var header []string
	for sc.Scan() {
		group, rest, ok := strings.Cut(sc.Text(), ": ")
		if !ok || !slices.Contains(groups, group) {
			header = nil
			continue
		}
		fields := strings.Fields(rest)
		if header == nil || header[0] != group {
			header = append([]string{group}, fields...)
			continue
		}
		if len(fields) != len(header)-1 {
			return fmt.Errorf("group %s: %d names, %d values", group, len(header)-1, len(fields))
		}
		for i, v := range fields {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("%s.%s: %w", group, header[i+1], err)
			}
			out[group+"."+header[i+1]] = n
		}
		header = nil
	}
	return sc.Err()
}

// Since is what changed from before to c: the counters whose value differs (gauges such as
// Tcp.CurrEstab included, as differences).
func (c TCPCounters) Since(before TCPCounters) TCPCounters {
	out := TCPCounters{}
	for k, v := range c {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}
