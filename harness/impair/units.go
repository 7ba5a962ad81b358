package impair

// This file is the one place where the configuration's units (time.Duration, probabilities in [0,1],
// bits per second) become kernel units: netem's microseconds (vishvananda/netlink turns them into psched
// ticks) and percentages, tc's bytes per second and ticks, nftables' numgen thresholds.

import (
	"math"
	"time"

	"github.com/vishvananda/netlink"
)

const (
	// frameBytes is the largest frame on a lab veth (MTU 1500 plus the Ethernet header): tc counts frames.
	frameBytes = 1514
	// netemLimit is netem's queue length in packets (the kernel default, 1000, drops at 40k packets/s x
	// 50 ms).
	netemLimit = 65536
	// keepOrderRate is the rate, in bytes/s, given to netem only to make it keep order: with a rate set,
	// netem schedules each packet at max(its own time, the previous packet's) plus len/rate, and at 2^40
	// bytes/s len/rate is ~1 ns per frame.
	keepOrderRate = uint64(1) << 40
	// lossModulus is the range of nftables' "numgen random mod N": the loss resolution is 1 ppm.
	lossModulus = 1_000_000
)

// micros is a duration in whole microseconds (Validate guarantees the resolution and range).
func micros(d time.Duration) uint32 { return uint32(d / time.Microsecond) }

// percent is a probability as netlink.NetemQdiscAttrs takes it (0.01 -> 1.0).
func percent(p float64) float32 { return float32(p * 100) }

// probU32 is a probability as the kernel's netem keeps it: a fraction of 2^32-1.
func probU32(p float64) uint32 { return netlink.Percentage2u32(percent(p)) }

// netemQdisc is the netem qdisc for imp (without its distribution table and loss model, which netlink's
// type cannot carry; see netemRequest). Latency and jitter go in as µs, loss as percent; NewNetem converts
// µs to psched ticks and percent to the kernel's u32.
func netemQdisc(attrs netlink.QdiscAttrs, imp Impairment) *netlink.Netem {
	na := netlink.NetemQdiscAttrs{
		Latency: micros(imp.Delay),
		Jitter:  micros(imp.Jitter),
		Loss:    percent(imp.Loss),
		Limit:   netemLimit,
	}
	if imp.KeepOrder && imp.Jitter > 0 {
		na.Rate64 = keepOrderRate
	}
	return netlink.NewNetem(attrs, na)
}

// geModel is netem's struct tc_netem_gemodel {p, r, h, k1}: h is the probability of NOT losing in the bad
// state (tc's "1-h" argument is 1-h), k1 the probability of losing in the good state (tc's "1-k").
func geModel(g GilbertElliott) [4]uint32 {
	return [4]uint32{probU32(g.P), probU32(g.R), probU32(1 - g.OneMinusH), probU32(g.OneMinusK)}
}

// tbfParams are a tbf qdisc's parameters for a rate.
type tbfParams struct {
	RateBytes  uint64 // bytes per second
	BurstBytes uint32 // bucket size
	LimitBytes uint32 // queue length
}

// tbfFor sizes tbf for r: a bucket of 5 ms of traffic (at least four full frames) and a queue of 100 ms
// (at least ten frames) behind it, which keeps a single TCP flow at the rate. The bucket must outlast
// the lateness of tbf's dequeue timer, or the link loses rate (with 2 ms, a machine busy with other builds
// passed about 8 of 10 Mbit/s); a bigger one lets a bigger burst through after the queue runs empty.
func tbfFor(r Rate) tbfParams {
	rb := uint64(r) / 8
	burst := max(rb/200, 4*frameBytes)
	limit := burst + max(rb/10, 10*frameBytes)
	return tbfParams{RateBytes: rb, BurstBytes: clampU32(burst), LimitBytes: clampU32(limit)}
}

// tbfQdisc is the tbf qdisc for p; the bucket goes to the kernel as the time to send it, in ticks.
func tbfQdisc(attrs netlink.QdiscAttrs, p tbfParams) *netlink.Tbf {
	return &netlink.Tbf{QdiscAttrs: attrs, Rate: p.RateBytes, Limit: p.LimitBytes,
		Buffer: netlink.Xmittime(p.RateBytes, p.BurstBytes)}
}

// lossThreshold is K in "numgen random mod lossModulus < K drop".
func lossThreshold(p float64) uint32 { return uint32(math.Round(p * lossModulus)) }

func clampU32(v uint64) uint32 { return uint32(min(v, math.MaxUint32)) }
