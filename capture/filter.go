package capture

import "github.com/gopacket/gopacket/layers"

// CheckFilter compiles a pcap-filter(7) expression the way a capture of a lab link will (every lab link is
// a veth, an Ethernet device), keeping snaplen bytes of each packet (0: the default), and returns the
// compiler's error, which quotes the expression. It needs no privileges and opens nothing, so a scenario's
// filters can be checked before any namespace exists. A build without cgo has no compiler: every filter
// is then an error matching harness.ErrUnsupported, as it would be when the capture starts.
func CheckFilter(snaplen int, expr string) error {
	if snaplen == 0 {
		snaplen = defaultSnaplen
	}
	_, err := compileFilter(layers.LinkTypeEthernet, snaplen, expr)
	return err
}
