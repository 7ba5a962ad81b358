package capture

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tcpdump is a tcpdump writing a pcap inside a lab namespace: the reference the capture is checked against.
type tcpdump struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	lines  chan string
}

// startTcpdump runs `ip netns exec NS tcpdump -w path` on iface and waits until it is listening.
func startTcpdump(t testing.TB, ns, iface, path string, snaplen int) *tcpdump {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "tcpdump", "-i", iface, "-nn", "-s", strconv.Itoa(snaplen),
		"-B", "131072", "-w", path)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tcpdump: %v", err)
	}
	td := &tcpdump{cmd: cmd, stderr: &bytes.Buffer{}, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			td.lines <- sc.Text()
		}
		close(td.lines)
	}()
	t.Cleanup(func() { td.stop(path) })
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-td.lines:
			if !ok {
				t.Fatalf("tcpdump exited: %s", td.stderr)
			}
			td.stderr.WriteString(l + "\n")
			if strings.Contains(l, "listening on") {
				return td
			}
		case <-deadline:
			t.Fatalf("tcpdump not listening after 10 s: %s", td.stderr)
		}
	}
}

var (
	tcpdumpDropRE     = regexp.MustCompile(`(\d+) packets? dropped by kernel`)
	tcpdumpCapturedRE = regexp.MustCompile(`(\d+) packets? captured`)
	tcpdumpReceivedRE = regexp.MustCompile(`(\d+) packets? received by filter`)
)

// stop waits until tcpdump's file stops growing (tcpdump lags behind the wire and, interrupted, does not
// drain its ring), interrupts it, waits for it and returns its kernel drop count. It fails if tcpdump did
// not write every packet its filter passed.
func (td *tcpdump) stop(path string) (dropped int, stderr string, err error) {
	if td.cmd.ProcessState != nil {
		return 0, td.stderr.String(), nil
	}
	var last int64 = -1
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		fi, err := os.Stat(path)
		if err == nil && fi.Size() == last {
			break
		}
		if err == nil {
			last = fi.Size()
		}
		time.Sleep(500 * time.Millisecond)
	}
	td.cmd.Process.Signal(syscall.SIGINT)
	for l := range td.lines {
		td.stderr.WriteString(l + "\n")
	}
	err = td.cmd.Wait()
	out := td.stderr.String()
	num := func(re *regexp.Regexp) int {
		if m := re.FindStringSubmatch(out); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n
		}
		return -1
	}
	dropped, captured, received := num(tcpdumpDropRE), num(tcpdumpCapturedRE), num(tcpdumpReceivedRE)
	if dropped < 0 || captured < 0 || captured != received {
		return dropped, out, fmt.Errorf("tcpdump did not write every packet it received: %s (%v)", out, err)
	}
	return dropped, out, nil
}

// tcpdumpCount counts the packets of a pcap file matching a filter, as `tcpdump -r` prints them.
func tcpdumpCount(t testing.TB, path, filter string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "tcpdump", "-r", path, "-nn", "-q", filter).Output()
	if err != nil {
		t.Fatalf("tcpdump -r %s %q: %v", filepath.Base(path), filter, err)
	}
	return uint64(bytes.Count(out, []byte{'\n'}))
}

// Filters that select what the analyser counts.
var tcpdumpFilters = []struct {
	name   string
	filter string
	get    func(Counts) uint64
}{
	{"tcp", "tcp", func(c Counts) uint64 { return c.Packets }},
	{"syn", "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", func(c Counts) uint64 { return c.SYN }},
	{"synack", "tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)", func(c Counts) uint64 { return c.SYNACK }},
	{"fin", "tcp[tcpflags] & tcp-fin != 0", func(c Counts) uint64 { return c.FIN }},
	{"rst", "tcp[tcpflags] & tcp-rst != 0", func(c Counts) uint64 { return c.RST }},
}

// TestCrossCheckTcpdump drives 50,000 short connections between two lab hosts while the capture and tcpdump
// both record the client's eth0, then checks that the analyser's counts equal tcpdump's filters on
// tcpdump's own file, and that tcpdump reads the capture's file with the same counts.
func TestCrossCheckTcpdump(t *testing.T) {
	const conns = 50000
	l := newLab(t, map[string]string{"net.ipv4.ip_local_port_range": "1024 65535"})
	srv := netip.AddrPortFrom(l.server.Addrs()[0], 8080)
	startServer(t, l.server, srv)
	dir := t.TempDir()
	ours, theirs := filepath.Join(dir, "capture.pcap"), filepath.Join(dir, "tcpdump.pcap")
	td := startTcpdump(t, nsName(l.client), "eth0", theirs, 128)
	c, err := NewCapture(l.client, LinkCapture{Iface: "eth0", Snaplen: 128}, ours)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })

	start := time.Now()
	load := runClients(t, l.client, srv, 8081, conns, 8, func(i int) clientAction {
		switch i % 100 {
		case 0:
			return actRefused
		case 50:
			return actAbort
		}
		return actServerCloses
	})
	elapsed := time.Since(start)
	waitQuiet(c, 200*time.Millisecond, 5*time.Second)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	tdDropped, tdOut, err := td.stop(theirs)
	if err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	t.Logf("%d connections in %s (%.0f/s): ok %d refused %d failed %d", conns, elapsed.Round(time.Millisecond),
		conns/elapsed.Seconds(), load.ok.Load(), load.refused.Load(), load.failed.Load())
	t.Logf("capture: engine %s received %d dropped %d written %d; tcpdump: %s", st.Engine, st.Received,
		st.Dropped, st.Written, strings.ReplaceAll(strings.TrimSpace(tdOut), "\n", "; "))
	if load.failed.Load() != 0 {
		t.Fatalf("%d connections failed: %v", load.failed.Load(), load.err())
	}
	if st.Dropped != 0 || tdDropped != 0 {
		t.Fatalf("drops: capture %d, tcpdump %d: the comparison needs complete captures", st.Dropped, tdDropped)
	}
	if st.Received != st.Written+st.Early {
		t.Errorf("capture received %d but wrote %d (+%d early)", st.Received, st.Written, st.Early)
	}

	// Connections in which the client sent an RST, by what each end sent (packets/FIN/RST).
	clientRST := map[string]int{}
	onConn := func(c Conn) {
		if c.Initiator.RST > 0 {
			clientRST[fmt.Sprintf("client %d/%d/%d server %d/%d/%d", c.Initiator.Packets, c.Initiator.FIN,
				c.Initiator.RST, c.Responder.Packets, c.Responder.FIN, c.Responder.RST)]++
		}
	}
	res, err := AnalyseFile(ours, Options{Roles: l.roles(), OnConn: onConn})
	if err != nil {
		t.Fatal(err)
	}
	total := res.Total(nil)
	for _, f := range tcpdumpFilters {
		want := tcpdumpCount(t, theirs, f.filter)
		onOurs := tcpdumpCount(t, ours, f.filter)
		got := f.get(total)
		t.Logf("%-6s analyser %7d  tcpdump(own file) %7d  tcpdump(capture file) %7d", f.name, got, want, onOurs)
		if got != want || onOurs != want {
			t.Errorf("%s: analyser %d, tcpdump on its file %d, tcpdump on the capture's file %d", f.name, got,
				want, onOurs)
		}
	}
	if total.SYN < conns {
		t.Errorf("%d SYNs for %d connections", total.SYN, conns)
	}
	wantRefused, wantAborts := uint64(conns/100), uint64(conns/100)
	var withClientRST uint64
	for _, n := range clientRST {
		withClientRST += uint64(n)
	}
	if res.RSTBy[RoleBackend] != wantRefused || withClientRST != wantAborts {
		t.Errorf("RSTs by role %v, connections with a client RST %d: want backend %d (refusals) and client RSTs "+
			"in %d connections (aborts)", res.RSTBy, withClientRST, wantRefused, wantAborts)
	}
	t.Logf("connections with a client RST (packets/FIN/RST of each end): %v", clientRST)
	if res.Conns.Refused != wantRefused || res.Conns.Established != conns-wantRefused {
		t.Errorf("conns %+v", res.Conns)
	}
	// The backend closes first everywhere: FIN before the client's abortive RST, RST refusing the SYN.
	if n := res.Conns.ClosedFirstBy[RoleBackend]; n != conns {
		t.Errorf("backend closed first %d times, want %d", n, conns)
	}
	t.Logf("handshake p50 %s p99 %s; RST by %v", res.Conns.Handshake.P50, res.Conns.Handshake.P99, res.RSTBy)
}
