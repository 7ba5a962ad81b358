//go:build !cgo

package capture

import (
	"fmt"

	"github.com/faultlab/faultlab/harness"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

// compileFilter needs libpcap (cgo); without it only captures without a filter work.
func compileFilter(lt layers.LinkType, snaplen int, expr string) ([]bpf.RawInstruction, error) {
	return nil, fmt.Errorf("compile filter %q: built without cgo (libpcap): %w", expr, harness.ErrUnsupported)
}
