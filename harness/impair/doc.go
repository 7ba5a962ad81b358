// Package impair gives lab links delay, jitter, loss and rate limits, per host link and per direction,
// on any Linux machine: with real tc netem where the kernel has it, and without it otherwise.
//
// Configuration (Config, LinkConfig, DirConfig, Impairment, Step) is plain data with yaml tags, in the
// project's units: time.Duration, probabilities in [0,1], Rate in bits/s ("10mbit"). Validate reports every
// problem with its field. Kernel units (netem's µs and percent, tbf's bytes/s and ticks, nftables' numgen
// thresholds) are made in one file, units.go.
//
// Directions. Every impairment lives in the lab's router namespace, on the router-side veth of a host's
// link: to_host (router -> host) on the veth's egress; from_host (host -> router) at the veth's ingress.
// Nothing is put in a host namespace, none of it in the root namespace, and nothing hooks a sender's
// OUTPUT chain; deleting the router namespace removes all of it.
//
// Engines (Engine; Detect finds which run here, Availability.Choose resolves "auto" or fails clearly):
//
//   - netem: tc netem as root qdisc 1: of the veth (to_host) or of an ifb that the veth's ingress is
//     redirected to (ingress qdisc, u32 match-all, mirred; from_host), with tbf 2: under it for rate.
//     keep_order sets a netem rate of 2^40 bytes/s, which makes netem keep order (it then schedules each
//     packet after the previous one). Distribution tables and the Gilbert-Elliott model go in attributes
//     that vishvananda/netlink's Netem cannot carry, so the engine builds the RTM_NEWQDISC message itself
//     from netlink's Netem (netemRequest); its bytes are unit-tested.
//   - userspace: loss by nftables rules in the router's forward hook (table ip <prefix>-impair,
//     `iifname/oifname X numgen random mod 1000000 < K drop`, matched by input interface for from_host
//     and output interface for to_host); delay, jitter and burst loss by a forward-hook rule
//     `queue num N bypass` and an NFQUEUE program (go-nfqueue) in the router namespace; rate by tbf on the
//     veth (to_host) or on the ifb behind its ingress (from_host). The queue rule uses nftables' queue
//     expression where the kernel has nft_queue and the xtables NFQUEUE target (what iptables-nft emits)
//     where it does not, as on the lab machines. See queue.go for the program's design and QueueStats for
//     its counters: overflow (packets that skipped the delay because the engine could not keep up) is
//     reported, never silent.
//
// The nft table is of family ip: the lab is IPv4-only.
//
// Both engines draw jitter from the same netem tables (dist.go) and run the same Gilbert-Elliott model.
// Loss, burst loss and delay act on packets as the router sees them: a TSO/GSO super-packet from a host
// counts as one packet, as it does for real netem; hosts that need per-segment loss should turn TSO off.
//
// Process-wide effects of the userspace engine, while it runs: one extra GOMAXPROCS per engine (its
// release thread keeps a P while it sleeps), a thread at SCHED_FIFO priority 10 (falling back to nice -20),
// and the kernel's software receive timestamps switched on (a socket with SO_TIMESTAMPNS, as tcpdump
// opens), which changes no setting.
//
// Start runs a Config for one cell: it detects and opens the engine, applies the impairments at time
// zero and the schedule's steps at their offsets, and Close returns a JSON-serialisable Report (engine,
// availability, every change with its time, the counters, overflow and warnings).
package impair
