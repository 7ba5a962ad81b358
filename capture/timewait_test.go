package capture

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// TestTimeWaitSide: which end the FINs' acknowledgement numbers leave in TIME_WAIT. The checker of
// seeds/001 is the initiator here: its FIN comes second on the wire in both "responder" and "both", and
// only the acknowledgement number in it says whether its kernel had processed the server's FIN.
func TestTimeWaitSide(t *testing.T) {
	const ci, si, req, resp = 1000, 5000, 19, 120
	cli, srv := netip.MustParseAddrPort("198.18.0.2:40000"), netip.MustParseAddrPort("198.18.1.2:80")
	handshake := []seg{
		{src: cli, dst: srv, flags: flagSYN, seq: ci, win: 64240, wscale: 7},
		{src: srv, dst: cli, flags: flagSYN | flagACK, seq: si, ack: ci + 1, win: 65160, wscale: 7},
		{src: cli, dst: srv, flags: flagACK, seq: ci + 1, ack: si + 1, win: 502, wscale: -1},
		{src: cli, dst: srv, flags: flagACK | 0x08, seq: ci + 1, ack: si + 1, win: 502, payload: req, wscale: -1},
		{src: srv, dst: cli, flags: flagACK | 0x08, seq: si + 1, ack: ci + 1 + req, win: 509, payload: resp,
			wscale: -1},
	}
	cliFIN := func(ack uint32) seg {
		return seg{src: cli, dst: srv, flags: flagACK | flagFIN, seq: ci + 1 + req, ack: ack, win: 501, wscale: -1}
	}
	srvFIN := func(ack uint32) seg {
		return seg{src: srv, dst: cli, flags: flagACK | flagFIN, seq: si + 1 + resp, ack: ack, win: 509, wscale: -1}
	}
	tests := []struct {
		name  string
		close []seg
		want  string
	}{
		// the client closes first; the server's FIN acknowledges it: the client keeps the TIME_WAIT
		{"initiator", []seg{cliFIN(si + 1 + resp), srvFIN(ci + 2 + req)}, "initiator"},
		// the server closes first and the client's FIN acknowledges it (CLOSE_WAIT, LAST_ACK): the server
		{"responder", []seg{srvFIN(ci + 1 + req), cliFIN(si + 2 + resp)}, "responder"},
		// the server's FIN is first on the wire, but the client's FIN does not acknowledge it: the client
		// closed before its kernel processed that FIN; both go through CLOSING to TIME_WAIT
		{"simultaneous", []seg{srvFIN(ci + 1 + req), cliFIN(si + 1 + resp)}, "both"},
		// the server's FIN, and the client has not closed within the capture: the server
		{"half_closed", []seg{srvFIN(ci + 1 + req)}, "responder"},
		{"reset", []seg{{src: cli, dst: srv, flags: flagRST | flagACK, seq: ci + 1 + req, ack: si + 1 + resp,
			wscale: -1}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSynth(t)
			for i, g := range append(append([]seg{}, handshake...), tt.close...) {
				g.at = time.Duration(i) * time.Millisecond
				s.add(t, g)
			}
			var got []Conn
			if _, err := Analyse(bytes.NewReader(s.bytes()), Options{OnConn: func(c Conn) { got = append(got, c) }}); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].TimeWait != tt.want {
				t.Fatalf("conns %+v, want one with time_wait %q", got, tt.want)
			}
		})
	}
}
