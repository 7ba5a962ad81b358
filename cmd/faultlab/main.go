// Command faultlab runs fault-injection scenarios against real TCP proxies in network namespaces.
//
//	faultlab run FILE      run a scenario and print its results table
//	faultlab up FILE       build a scenario's lab and start its services, then wait (look around with exec)
//	faultlab exec HOST -- CMD...   run a command in the network namespace of a host of a running lab
//	faultlab report RUN_DIR        rebuild a run directory's results.json and table.md from its records
//	faultlab clean         remove everything left by crashed runs
//	faultlab version
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

const usage = `usage:
  faultlab run [flags] FILE        run a scenario; prints progress and the results table; exit 0 when
                                   every claim holds, 1 when one fails or is void, 3 when inconclusive
  faultlab check [flags] FILE      check a scenario on this machine without running it (file:line per problem)
  faultlab up [flags] FILE         build the lab of one cell, start its services, wait for Ctrl-C
  faultlab exec [--run ID] HOST [--] CMD [ARGS...]
                                   run this machine's CMD in the network namespace of a host of a
                                   running lab (up or run; netns or docker backend)
  faultlab report [--format md|json|junit|html] [--out FILE] RUN_DIR
                                   rebuild a run's report from its records: rewrite results.json and
                                   table.md (default), or render one format to stdout or FILE
  faultlab baseline save RUN_DIR --to PATH
                                   store a compact baseline of a run (counts, intervals, environment)
  faultlab compare [flags] BASELINE RUN_DIR
                                   per cell and metric: better, same, worse or inconclusive; exit 1
                                   on worse, 2 when the run cannot be compared (docs/reports.md)
  faultlab merge [--out DIR] SHARD_DIR...
                                   combine the run directories of run --shard I/N into one run
                                   and its report (verdicts across shards; docs/scale.md)
  faultlab k8s-job [flags] FILE    print a Kubernetes Indexed Job running FILE in N shards
  faultlab vm [flags] run [run flags] FILE
                                   run a scenario inside the lab's guest: Debian's own kernel under qemu
                                   (build it first: make vm-image); the run directory comes back under --out
  faultlab clean                   remove namespaces and processes left by crashed runs
  faultlab version
Flags may follow the arguments (faultlab run FILE --long); after -- everything is an argument.
Run 'faultlab CMD -h' for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := interruptContext()
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = cmdRun(ctx, os.Args[2:])
	case "check":
		err = cmdCheck(ctx, os.Args[2:])
	case "up":
		err = cmdUp(ctx, os.Args[2:])
	case "exec":
		err = cmdExec(ctx, os.Args[2:])
	case "report":
		err = cmdReport(os.Args[2:])
	case "baseline":
		err = cmdBaseline(os.Args[2:])
	case "compare":
		err = cmdCompare(os.Args[2:])
	case "merge":
		err = cmdMerge(os.Args[2:])
	case "k8s-job":
		err = cmdK8sJob(os.Args[2:])
	case "vm":
		err = cmdVM(ctx, os.Args[2:])
	case "clean":
		err = cmdClean(ctx)
	case "version":
		err = cmdVersion()
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "faultlab: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0) // the command printed its usage
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "faultlab: %v\n", err)
		var ee exitCoder
		if errors.As(err, &ee) {
			os.Exit(ee.ExitCode())
		}
		os.Exit(1)
	}
}

type exitCoder interface{ ExitCode() int }

// interruptContext is cancelled by the first SIGINT or SIGTERM, so the run tears its lab down and writes the
// records it has; a second signal exits at once (then `faultlab clean` removes what was left).
func interruptContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-ch
		fmt.Fprintf(os.Stderr, "\nfaultlab: %v: stopping and tearing down (again to abort; then run `faultlab clean`)\n", sig)
		cancel()
		<-ch
		os.Exit(130)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}
