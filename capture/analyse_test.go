package capture

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"
)

var (
	cliAP = netip.MustParseAddrPort("198.18.0.2:40000")
	srvAP = netip.MustParseAddrPort("198.18.1.2:80")
	roles = map[netip.Addr]Role{cliAP.Addr(): RoleClient, srvAP.Addr(): RoleBackend}
)

func analyse(t *testing.T, b []byte, opts Options) *Result {
	t.Helper()
	opts.Roles = roles
	opts.KeepConns = true
	res, err := Analyse(bytes.NewReader(b), opts)
	if err != nil {
		t.Fatalf("analyse: %v", err)
	}
	return res
}

func dirOf(t *testing.T, r *Result, src, dst netip.AddrPort) Direction {
	t.Helper()
	for _, d := range r.Directions {
		if d.Src == src.Addr() && d.Dst == dst.Addr() {
			return d
		}
	}
	t.Fatalf("no direction %s -> %s in %+v", src.Addr(), dst.Addr(), r.Directions)
	return Direction{}
}

func TestAnalyseExchange(t *testing.T) {
	s := newSynth(t)
	s.exchange(t, 0, cliAP, srvAP, 100, 60000)
	r := analyse(t, s.bytes(), Options{})
	if r.Records != 8 || r.TCP != 8 || r.Malformed != 0 || r.Other != 0 {
		t.Errorf("records %d tcp %d malformed %d other %d", r.Records, r.TCP, r.Malformed, r.Other)
	}
	up, down := dirOf(t, r, cliAP, srvAP), dirOf(t, r, srvAP, cliAP)
	if up.Total.SYN != 1 || up.Total.FIN != 1 || up.Total.PayloadBytes != 100 || up.SrcRole != RoleClient {
		t.Errorf("client->server %+v", up)
	}
	if down.Total.SYNACK != 1 || down.Total.FIN != 1 || down.Total.PayloadBytes != 60000 {
		t.Errorf("server->client %+v", down.Total)
	}
	if len(r.ConnList) != 1 {
		t.Fatalf("conns %+v", r.ConnList)
	}
	c := r.ConnList[0]
	if !c.Established || c.Partial || c.Handshake != 2*time.Millisecond || c.SYNToSYNACK != time.Millisecond {
		t.Errorf("handshake: %+v", c)
	}
	if c.ClosedFirst != "initiator" || c.ClosedFirstRole != RoleClient || c.CloseKind != "fin" {
		t.Errorf("close: %+v", c)
	}
	if r.Conns.Established != 1 || r.Conns.ClosedFirstBy[RoleClient] != 1 || r.Conns.Handshake.P50 == 0 {
		t.Errorf("summary %+v", r.Conns)
	}
}

func TestAnalyseSYNRetransAndWindows(t *testing.T) {
	s := newSynth(t)
	// The first SYN is lost and retransmitted 1 s later; the connection then completes.
	s.add(t, seg{at: 0, src: cliAP, dst: srvAP, flags: flagSYN, seq: 1000, win: 64240, wscale: 7})
	s.exchange(t, time.Second, cliAP, srvAP, 10, 10)
	r := analyse(t, s.bytes(), Options{Window: 500 * time.Millisecond})
	up := dirOf(t, r, cliAP, srvAP)
	if up.Total.SYN != 2 || up.Total.SYNRetrans != 1 {
		t.Errorf("SYN %d retrans %d, want 2 and 1", up.Total.SYN, up.Total.SYNRetrans)
	}
	if len(up.Windows) != 2 || up.Windows[0].Start != 0 || up.Windows[1].Start != time.Second ||
		up.Windows[0].SYN != 1 || up.Windows[1].SYNRetrans != 1 {
		t.Errorf("windows %+v", up.Windows)
	}
	c := r.ConnList[0]
	if c.SYNs != 2 || c.SYNRetrans != 1 || c.Handshake != time.Second+2*time.Millisecond {
		t.Errorf("conn %+v", c)
	}
	if r.Conns.WithSYNRetrans != 1 {
		t.Errorf("summary %+v", r.Conns)
	}
}

func TestAnalyseRefusedAndReset(t *testing.T) {
	s := newSynth(t)
	other := netip.AddrPortFrom(cliAP.Addr(), 40001)
	s.add(t, seg{src: cliAP, dst: srvAP, flags: flagSYN, seq: 7, wscale: -1})
	s.add(t, seg{at: time.Millisecond, src: srvAP, dst: cliAP, flags: flagRST | flagACK, ack: 8, wscale: -1})
	s.exchange(t, 10*time.Millisecond, other, srvAP, 1, 1)
	s.add(t, seg{at: 20 * time.Millisecond, src: srvAP, dst: other, flags: flagRST, seq: 5003, wscale: -1})
	r := analyse(t, s.bytes(), Options{})
	if r.RSTBy[RoleBackend] != 2 || r.RSTBy[RoleClient] != 0 {
		t.Errorf("RST by %v", r.RSTBy)
	}
	if r.Conns.Refused != 1 || r.Conns.Total != 2 || !r.ConnList[0].Refused ||
		r.ConnList[0].ClosedFirst != "responder" || r.ConnList[0].CloseKind != "rst" {
		t.Errorf("summary %+v first %+v", r.Conns, r.ConnList[0])
	}
}

func TestAnalyseZeroWindowAndWindowFull(t *testing.T) {
	s := newSynth(t)
	ms := time.Millisecond
	for _, g := range []seg{
		{src: cliAP, dst: srvAP, flags: flagSYN, seq: 0, win: 64240, wscale: 2},
		{at: ms, src: srvAP, dst: cliAP, flags: flagSYN | flagACK, seq: 100, ack: 1, win: 1000, wscale: 2},
		{at: 2 * ms, src: cliAP, dst: srvAP, flags: flagACK, seq: 1, ack: 101, win: 1000, wscale: -1},
		// The server's window is 1000<<2 = 4000 bytes from ack 1: 4000 bytes fill it exactly.
		{at: 3 * ms, src: srvAP, dst: cliAP, flags: flagACK, seq: 101, ack: 1, win: 1000, wscale: -1},
		{at: 4 * ms, src: cliAP, dst: srvAP, flags: flagACK, seq: 1, ack: 101, win: 1000, payload: 4000, wscale: -1},
		{at: 5 * ms, src: srvAP, dst: cliAP, flags: flagACK, seq: 101, ack: 4001, win: 0, wscale: -1},
		{at: 105 * ms, src: srvAP, dst: cliAP, flags: flagACK, seq: 101, ack: 4001, win: 0, wscale: -1},
		{at: 205 * ms, src: srvAP, dst: cliAP, flags: flagACK, seq: 101, ack: 4001, win: 500, wscale: -1},
	} {
		s.add(t, g)
	}
	r := analyse(t, s.bytes(), Options{})
	down, up := dirOf(t, r, srvAP, cliAP), dirOf(t, r, cliAP, srvAP)
	if down.Total.ZeroWindow != 2 || up.Total.WindowFull != 1 {
		t.Errorf("zero windows %d (want 2), window full %d (want 1)", down.Total.ZeroWindow, up.Total.WindowFull)
	}
	c := r.ConnList[0]
	if !c.ZeroWindow || c.Responder.ZeroWindowTime != 200*ms || c.Initiator.ZeroWindowAdverts != 0 {
		t.Errorf("conn %+v", c)
	}
	if r.Conns.ZeroWindowBy[RoleBackend] != 1 || r.Conns.ZeroWindowTime.Max != 200*ms {
		t.Errorf("summary %+v", r.Conns)
	}
}

func TestAnalysePortReuseAndPartial(t *testing.T) {
	s := newSynth(t)
	// A connection already running when the capture began, then two connections on one address pair.
	s.add(t, seg{src: srvAP, dst: cliAP, flags: flagACK, seq: 9, ack: 9, win: 10, payload: 5, wscale: -1})
	s.exchange(t, time.Second, cliAP, srvAP, 1, 1)
	s.add(t, seg{at: 3 * time.Second, src: cliAP, dst: srvAP, flags: flagSYN, seq: 99999, win: 1, wscale: -1})
	r := analyse(t, s.bytes(), Options{})
	if r.Conns.Total != 3 || r.Conns.Partial != 1 || r.Conns.Established != 1 || r.Conns.Unanswered != 1 {
		t.Errorf("summary %+v", r.Conns)
	}
	if c := r.ConnList[0]; !c.Partial || c.Initiator.Addr != srvAP {
		t.Errorf("partial conn %+v", c)
	}
}

func TestAnalyseIPv6AndVLAN(t *testing.T) {
	s := newSynth(t)
	s.vlan = true
	c6, s6 := netip.MustParseAddrPort("[2001:db8::2]:40000"), netip.MustParseAddrPort("[2001:db8::1]:443")
	s.exchange(t, 0, c6, s6, 1, 1)
	r := analyse(t, s.bytes(), Options{})
	if r.TCP != 8 || r.Conns.Established != 1 || r.Directions[0].Src != s6.Addr() {
		t.Errorf("result %+v", r)
	}
}

func TestAnalyseStreamsConnections(t *testing.T) {
	s := newSynth(t)
	for i := range 50 {
		cli := netip.AddrPortFrom(cliAP.Addr(), uint16(30000+i))
		s.exchange(t, time.Duration(i)*time.Second, cli, srvAP, 1, 1)
	}
	var got int
	res, err := Analyse(bytes.NewReader(s.bytes()), Options{OnConn: func(Conn) { got++ }})
	if err != nil {
		t.Fatal(err)
	}
	if got != 50 || res.Conns.Total != 50 || res.ConnList != nil {
		t.Errorf("streamed %d, total %d, list %d", got, res.Conns.Total, len(res.ConnList))
	}
}

func TestAnalyseDamagedFile(t *testing.T) {
	s := newSynth(t)
	s.exchange(t, 0, cliAP, srvAP, 1, 1)
	b := s.bytes()
	res, err := Analyse(bytes.NewReader(b[:len(b)-10]), Options{})
	if !errors.Is(err, io.ErrUnexpectedEOF) || res == nil || res.Records != 7 {
		t.Errorf("truncated: err %v, res %+v", err, res)
	}
	for name, in := range map[string][]byte{"empty": nil, "garbage": []byte("not a pcap file at all, no")} {
		if _, err := Analyse(bytes.NewReader(in), Options{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestDurHist(t *testing.T) {
	var h DurationHist
	for i := 1; i <= 1000; i++ {
		h.Add(time.Duration(i) * time.Millisecond)
	}
	st := h.Stats()
	near := func(got, want time.Duration) bool { return got > want*98/100 && got < want*102/100 }
	if st.Count != 1000 || st.Min != time.Millisecond || st.Max != time.Second || !near(st.P50, 500*time.Millisecond) ||
		!near(st.P99, 990*time.Millisecond) || !near(st.Mean, 500500*time.Microsecond) {
		t.Errorf("stats %+v", st)
	}
}
