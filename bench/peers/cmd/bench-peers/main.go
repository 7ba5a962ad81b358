// Command bench-peers is `make bench-peers`: one run, on one machine, of the lab's parts beside the tools users
// would pick instead, printing one table of same-run ratios (docs/performance.md says how each figure is
// measured). It brings up bench/peers/lab.yaml (HAProxy in front of nginx) once and, in the client's
// namespace: climbs a rate ladder with the lab's load generator, vegeta and httperf; a packet-rate ladder with
// the lab's capture and tcpdump; samples 25,000 TIME_WAIT sockets with the lab's sampler and ss; builds 3-host
// stars with the netns provider and Mininet; then analyses one pcap with the lab's analyser and tshark and
// runs bench/memory.sh. A ratio below 1.0 comes with a CPU profile of the lab's side.
//
// The peers are installed by bench/peers/install.sh (pinned; not project dependencies). Run it from the
// repository's root as root, holding /tmp/faultlab-heavy.lock (the Makefile does).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	var err error
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "loadgen":
			err = childLoadgen(os.Args[2:])
		case "blast":
			err = childBlast(os.Args[2:])
		case "drain":
			err = childDrain(os.Args[2:])
		default:
			err = benchMain(os.Args[1:])
		}
	} else {
		err = benchMain(nil)
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bench-peers:", err)
		}
		os.Exit(1)
	}
}

func benchMain(args []string) error {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, cfg)
}
