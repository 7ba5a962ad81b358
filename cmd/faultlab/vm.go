package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/harness/vm"
	"github.com/faultlab/faultlab/results"
)

// cmdVM runs `faultlab run` inside the lab's guest (harness/vm: another kernel, Debian's own, under qemu):
//
//	faultlab vm [--suite bookworm] [--cpus 2] [--memory 2048] [--timeout 2h] run [run flags] FILE
//
// The scenario is checked here first (bad input fails before the guest boots), this binary and the scenario
// file are shared with the guest over 9p, the guest runs the lab with the netns backend, and the run
// directory comes back under --out (default runs/) with vm.json saying which kernel ran it. The exit status
// is the guest run's.
func cmdVM(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("vm", flag.ContinueOnError)
	suite := fs.String("suite", "bookworm", "Debian suite of the guest (its kernel is that suite's linux-image-amd64)")
	dir := fs.String("vm-dir", "", "the guest's image directory (default $FAULTLAB_VM_DIR or images/out/vm/SUITE)")
	cpus := fs.Int("cpus", 2, "guest CPUs (emulated)")
	mem := fs.Int("memory", 2048, "guest memory in MiB")
	timeout := fs.Duration("timeout", 2*time.Hour, "the whole guest run, boot to power-off")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: faultlab vm [flags] run [run flags] FILE   (build the guest first: make vm-image)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 || rest[0] != "run" {
		fs.Usage()
		return errors.New("vm: want `run [run flags] FILE` after the vm flags")
	}
	f, file, err := parseRunFlags("run", rest[1:])
	if err != nil {
		return err
	}
	if f.junit != "" {
		return errors.New("vm run: --junit is not passed into the guest: write it from the run directory with " +
			"`faultlab report --format junit RUN_DIR`")
	}
	if f.backend != "" && f.backend != "netns" {
		return fmt.Errorf("vm run: --backend %s: the guest runs the netns backend only", f.backend)
	}
	if _, err := spec.Load(file); err != nil { // bad input fails before the guest boots
		return err
	}
	if *dir == "" {
		wd, _ := os.Getwd()
		*dir = vm.DefaultDir(wd, *suite)
	}
	im, err := vm.Open(*dir)
	if err != nil {
		return err
	}
	dirs, res, err := guestRun(ctx, im, file, rest[1:], f.out,
		vm.Options{CPUs: *cpus, MemoryMB: *mem, Timeout: *timeout, Output: os.Stdout})
	if err != nil {
		if res != nil && res.ExitCode != 0 { // refused before any work, or could not start: the guest's status says so
			return &vmExit{code: res.ExitCode, kernel: im.Kernel}
		}
		return err
	}
	for _, d := range dirs {
		fmt.Fprintf(os.Stderr, "vm: guest %s: run directory %s (boot to power-off %s)\n", im.Kernel, d,
			res.Elapsed.Round(time.Second))
	}
	if res.ExitCode != 0 {
		return &vmExit{code: res.ExitCode, kernel: im.Kernel}
	}
	return nil
}

// guestRun runs `faultlab run RUNARGS` (the scenario file among them) in the guest im with the netns backend
// and brings the run directories it wrote back under out (out/SCENARIO/ID, each with a vm.json). This binary
// and the file are shared with the guest over 9p; the run writes to the guest's own disk (a daemon's unix
// socket cannot live on 9p) and its directory is copied to the share, sockets left out. The result is nil
// when the guest did not run the script; the error says why no directory came back.
func guestRun(ctx context.Context, im *vm.Image, file string, runArgs []string, out string, o vm.Options) ([]string,
	*vm.Result, error) {
	share, err := os.MkdirTemp("", "faultlab-vm-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(share)
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	if err := copyFile(exe, filepath.Join(share, "faultlab"), 0o755); err != nil {
		return nil, nil, err
	}
	if err := copyFile(file, filepath.Join(share, filepath.Base(file)), 0o644); err != nil {
		return nil, nil, err
	}
	guestArgs := []string{"run"}
	for _, a := range runArgs {
		if a == file {
			a = filepath.Base(file)
		}
		guestArgs = append(guestArgs, shellQuote(a))
	}
	guestArgs = append(guestArgs, "--out", "/var/tmp/faultlab-runs", "--backend", "netns")
	script := "ulimit -n 20000\n./faultlab " + strings.Join(guestArgs, " ") + "\nrc=$?\n" +
		"if [ -d /var/tmp/faultlab-runs ]; then find /var/tmp/faultlab-runs -type s -delete; " +
		"cp -a /var/tmp/faultlab-runs /host/runs || rc=70; fi\nexit $rc\n"
	fmt.Fprintf(os.Stderr, "vm: booting %s (%s, %s) under emulation: %d CPUs, %d MiB\n", im.Kernel, im.Package,
		im.Suite, o.CPUs, o.MemoryMB)
	res, err := im.Run(ctx, share, script, o)
	if err != nil {
		return nil, nil, err
	}
	dirs, err := bringBack(filepath.Join(share, "runs"), out, im, res)
	return dirs, res, err
}

// vmInfo is vm.json in a run directory made in the guest.
type vmInfo struct {
	Kernel   string  `json:"kernel"`
	Package  string  `json:"package"`
	Suite    string  `json:"suite"`
	Emulator string  `json:"emulator"`
	Seconds  float64 `json:"boot_to_poweroff_seconds"`
	ExitCode int     `json:"exit_code"`
}

// bringBack moves the run directories the guest wrote under from (SCENARIO/ID) to out/SCENARIO/ID, each with
// a vm.json, and returns their new paths.
func bringBack(from, out string, im *vm.Image, res *vm.Result) ([]string, error) {
	scenarios, err := os.ReadDir(from)
	if err != nil {
		return nil, fmt.Errorf("vm: the guest wrote no run directory (%v): its output above says why", err)
	}
	info, _ := json.MarshalIndent(vmInfo{Kernel: im.Kernel, Package: im.Package, Suite: im.Suite,
		Emulator: "qemu-system-x86_64 (TCG)", Seconds: res.Elapsed.Seconds(), ExitCode: res.ExitCode}, "", "  ")
	var dirs []string
	for _, sc := range scenarios {
		runs, err := os.ReadDir(filepath.Join(from, sc.Name()))
		if err != nil {
			return dirs, err
		}
		for _, r := range runs {
			src, dst := filepath.Join(from, sc.Name(), r.Name()), filepath.Join(out, sc.Name(), r.Name())
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return dirs, err
			}
			if err := moveDir(src, dst); err != nil {
				return dirs, err
			}
			if err := os.WriteFile(filepath.Join(dst, "vm.json"), append(info, '\n'), 0o644); err != nil {
				return dirs, err
			}
			dirs = append(dirs, dst)
		}
	}
	return dirs, nil
}

// moveDir renames src to dst, copying across filesystems (the share is under the system's temp directory).
func moveDir(src, dst string) error {
	if os.Rename(src, dst) == nil {
		return nil
	}
	if err := results.CopyTree(src, dst); err != nil {
		return fmt.Errorf("vm: bringing the run directory back: %w", err)
	}
	return os.RemoveAll(src)
}

// copyFile copies src to dst with mode.
func copyFile(src, dst string, mode os.FileMode) error {
	if err := results.CopyFile(src, dst); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// vmExit is a guest run that ended with a non-zero status: faultlab vm exits with it.
type vmExit struct {
	code   int
	kernel string
}

func (e *vmExit) Error() string {
	return fmt.Sprintf("the run in the guest (kernel %s) exited with status %d", e.kernel, e.code)
}
func (e *vmExit) ExitCode() int { return e.code }
