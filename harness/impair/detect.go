package impair

import (
	"errors"
	"fmt"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Probe devices: a veth pair inside the router namespace (veth is what the lab is made of, so it exists
// wherever a lab does; the dummy driver may not).
const (
	probeLink = "flprobe0"
	probePeer = "flprobe1"
)

// Availability is what Detect found: the kernel, the engines it can run (preferred first) and why the
// others cannot run.
type Availability struct {
	Kernel  string            `json:"kernel"`
	Engines []string          `json:"engines"`
	Missing map[string]string `json:"missing,omitempty"`
}

// Has reports whether the named engine is available.
func (a Availability) Has(name string) bool {
	for _, e := range a.Engines {
		if e == name {
			return true
		}
	}
	return false
}

// Choose resolves a scenario's engine ("" or auto: the first available) or fails clearly, wrapping
// ErrEngineUnavailable.
func (a Availability) Choose(want string) (string, error) {
	if want == "" || want == EngineAuto {
		if len(a.Engines) == 0 {
			return "", fmt.Errorf("%w: none on kernel %s (netem: %s; userspace: %s)", ErrEngineUnavailable,
				a.Kernel, a.Missing[EngineNetem], a.Missing[EngineUserspace])
		}
		return a.Engines[0], nil
	}
	if a.Has(want) {
		return want, nil
	}
	why, ok := a.Missing[want]
	if !ok {
		return "", fmt.Errorf("impair engine %q: not one of auto, netem, userspace", want)
	}
	return "", &UnavailableError{Engine: want, Kernel: a.Kernel, Reason: why, Available: a.Engines}
}

// UnavailableError says that a scenario asked for an engine this machine cannot run, and what to use.
// It matches ErrEngineUnavailable with errors.Is.
type UnavailableError struct {
	Engine, Kernel, Reason string
	Available              []string
}

func (e *UnavailableError) Error() string {
	alt := "no other engine works here"
	if len(e.Available) > 0 {
		alt = "use engine: " + e.Available[0] + " or auto"
	}
	return fmt.Sprintf("impair engine %s is not available on kernel %s: %s; %s", e.Engine, e.Kernel, e.Reason, alt)
}

func (e *UnavailableError) Is(target error) bool { return target == ErrEngineUnavailable }

// Detect probes, inside the router namespace, which engines this kernel can run: netem by adding a netem
// qdisc to a probe veth (ENOENT or EOPNOTSUPP mean sch_netem is absent), userspace by adding a tbf,
// an ifb and the nftables rules it needs and binding an NFQUEUE. Everything probed is removed again.
// An error means the probe itself failed (not that an engine is missing).
func Detect(router harness.NetnsHost) (Availability, error) {
	a := Availability{Kernel: kernelRelease(), Missing: map[string]string{}}
	if err := refuseRoot(router); err != nil {
		return a, fmt.Errorf("detect impair engines: %w", err)
	}
	tc, err := newTCOps(router)
	if err != nil {
		return a, fmt.Errorf("detect impair engines: %w", err)
	}
	defer tc.close()
	dev, err := addProbeVeth(tc)
	defer delProbeVeth(tc)
	if err != nil {
		return a, fmt.Errorf("detect impair engines: %w", err)
	}
	if why := probeNetem(tc, dev); why != "" {
		a.Missing[EngineNetem] = why
	} else {
		a.Engines = append(a.Engines, EngineNetem)
	}
	if why := probeUserspace(router, tc, dev); why != "" {
		a.Missing[EngineUserspace] = why
	} else {
		a.Engines = append(a.Engines, EngineUserspace)
	}
	return a, nil
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

func addProbeVeth(tc *tcOps) (int, error) {
	delProbeVeth(tc) // a crashed probe's leftover
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: probeLink}, PeerName: probePeer}
	if err := tc.h.LinkAdd(veth); err != nil {
		return 0, fmt.Errorf("add probe veth: %w", err)
	}
	return tc.index(probeLink)
}

func delProbeVeth(tc *tcOps) {
	if l, err := tc.h.LinkByName(probeLink); err == nil {
		_ = tc.h.LinkDel(l)
	}
}

// probeNetem returns why netem is unusable, or "".
func probeNetem(tc *tcOps, dev int) string {
	q := netemQdisc(qattrs(dev, netlink.HANDLE_ROOT, rootHandle), Impairment{Delay: time.Millisecond})
	err := tc.h.QdiscAdd(q)
	switch {
	case err == nil:
		_ = tc.delQdisc(dev, netlink.HANDLE_ROOT, rootHandle)
		return ""
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EOPNOTSUPP):
		return "the sch_netem module is missing"
	}
	return fmt.Sprintf("adding a netem qdisc failed: %v", err)
}

// probeUserspace returns why the userspace engine is unusable, or "".
func probeUserspace(router harness.NetnsHost, tc *tcOps, dev int) string {
	if err := tc.h.QdiscAdd(tbfQdisc(qattrs(dev, netlink.HANDLE_ROOT, rootHandle), tbfFor(10_000_000))); err != nil {
		return fmt.Sprintf("tbf (sch_tbf) is missing: %v", err)
	}
	_ = tc.delQdisc(dev, netlink.HANDLE_ROOT, rootHandle)
	ifb := &netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: "flprobeifb"}}
	if err := tc.h.LinkAdd(ifb); err != nil {
		return fmt.Sprintf("ifb is missing: %v", err)
	}
	_ = tc.h.LinkDel(ifb)
	fd, err := unix.Open(router.NetnsPath(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Sprintf("open router netns: %v", err)
	}
	defer unix.Close(fd)
	n, err := openNFT(fd, "fl-impair-probe", 65535)
	if n != nil {
		defer n.close()
	}
	if err != nil {
		return fmt.Sprintf("nftables: %v", err)
	}
	if err := n.sync([]nftPath{{key: "probe/to_host", link: probePeer, dir: ToHost, loss: 0.5}}); err != nil {
		return fmt.Sprintf("nftables numgen (nft_numgen): %v", err)
	}
	q, err := startQueue(router, queueConfig{num: 65535, maxLen: 16, sockBuf: 1 << 16})
	if err != nil {
		return fmt.Sprintf("NFQUEUE (nfnetlink_queue): %v", err)
	}
	_ = q.stop(0)
	return ""
}
