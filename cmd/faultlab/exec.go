package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"github.com/faultlab/faultlab/harness"
	"golang.org/x/sys/unix"
)

// netnsDir is where the netns provider binds its namespaces (as `ip netns` does).
const netnsDir = "/var/run/netns"

// cmdExec replaces this process with CMD running inside HOST's network namespace.
func cmdExec(args []string) error {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	run := fs.String("run", "", "run id (default: the newest lab that has HOST)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: faultlab exec [--run ID] HOST -- CMD [ARGS...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) < 2 {
		fs.Usage()
		return errors.New("exec: want HOST and a command")
	}
	host, argv := rest[0], rest[1:]
	if argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		return errors.New("exec: no command after --")
	}
	path, err := findNetns(*run, host)
	if err != nil {
		return err
	}
	bin, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	runtime.LockOSThread() // this thread execs; it never goes back
	ns, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("exec: enter %s: %w", path, err)
	}
	return syscall.Exec(bin, argv, os.Environ())
}

// findNetns finds HOST's namespace of the given run, or of the newest run that has one.
func findNetns(run, host string) (string, error) {
	pattern := filepath.Join(netnsDir, harness.PrefixBase+"*-"+host)
	if run != "" {
		pattern = filepath.Join(netnsDir, harness.PrefixBase+run+"-"+host)
	}
	matches, _ := filepath.Glob(pattern)
	if len(matches) == 0 {
		all, _ := filepath.Glob(filepath.Join(netnsDir, harness.PrefixBase+"*"))
		for i := range all {
			all[i] = filepath.Base(all[i])
		}
		return "", fmt.Errorf("exec: no lab host %q is running (is `faultlab up` running?); lab namespaces: [%s]",
			host, strings.Join(all, " "))
	}
	sort.Slice(matches, func(i, j int) bool { return mtime(matches[i]) > mtime(matches[j]) })
	if len(matches) > 1 {
		fmt.Fprintf(os.Stderr, "faultlab exec: %d labs have host %s; using the newest, %s (choose with --run)\n",
			len(matches), host, filepath.Base(matches[0]))
	}
	return matches[0], nil
}

func mtime(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.ModTime().UnixNano()
}
