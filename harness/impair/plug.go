package impair

import (
	"errors"
	"fmt"

	"github.com/faultlab/faultlab/harness"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoPlug is returned (wrapped) by DetectPlug when the kernel has no plug qdisc (sch_plug).
var ErrNoPlug = errors.New("the plug qdisc (sch_plug) is missing")

// DetectPlug reports whether the kernel can hold packets in a plug qdisc (sch_plug, the qdisc that buffers
// a device's packets until told to release them), by adding one as the root qdisc of a probe veth pair
// in h's namespace (never the root namespace) and removing both. It returns nil when it can, an error
// wrapping ErrNoPlug when the module is missing, and another error when the probe itself failed.
func DetectPlug(h harness.NetnsHost) error {
	if err := refuseRoot(h); err != nil {
		return err
	}
	tc, err := newTCOps(h)
	if err != nil {
		return err
	}
	defer tc.close()
	dev, err := addProbeVeth(tc)
	if err != nil {
		return err
	}
	defer delProbeVeth(tc)
	plug := &netlink.GenericQdisc{QdiscAttrs: qattrs(dev, netlink.HANDLE_ROOT, rootHandle), QdiscType: "plug"}
	err = tc.h.QdiscAdd(plug)
	switch {
	case err == nil:
		_ = tc.delQdisc(dev, netlink.HANDLE_ROOT, rootHandle)
		return nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("%w (kernel %s): adding one failed: %w", ErrNoPlug, kernelRelease(), err)
	}
	return fmt.Errorf("probe the plug qdisc: %w", err)
}
