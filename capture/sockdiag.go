package capture

import (
	"fmt"
	"slices"
	"strings"

	"github.com/faultlab/faultlab/harness"
)

// StateNames are the kernel's names of the TCP states, indexed by state number.
var StateNames = [...]string{harness.TCPEstablished: "ESTABLISHED", harness.TCPSynSent: "SYN_SENT",
	harness.TCPSynRecv: "SYN_RECV", harness.TCPFinWait1: "FIN_WAIT1", harness.TCPFinWait2: "FIN_WAIT2",
	harness.TCPTimeWait: "TIME_WAIT", harness.TCPClose: "CLOSE", harness.TCPCloseWait: "CLOSE_WAIT",
	harness.TCPLastAck: "LAST_ACK", harness.TCPListen: "LISTEN", harness.TCPClosing: "CLOSING"}

// stateMask turns state names into inet_diag's idiag_states bitmask; empty means every state.
func stateMask(names []string) (uint32, error) {
	if len(names) == 0 {
		return 0x1FFE, nil // states 1-12
	}
	var mask uint32
	for _, n := range names {
		i := slices.Index(StateNames[:], strings.ToUpper(n))
		if i <= 0 {
			return 0, fmt.Errorf("state %q: want one of %s", n, strings.Join(StateNames[1:], ", "))
		}
		mask |= 1 << i
		if i == harness.TCPSynRecv {
			mask |= 1 << harness.TCPNewSynRecv // request sockets
		}
		if i == harness.TCPFinWait2 {
			mask |= 1 << harness.TCPTimeWait // orphaned FIN_WAIT2 sockets live as time-wait minisockets
		}
	}
	return mask, nil
}
