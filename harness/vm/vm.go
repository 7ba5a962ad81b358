// Package vm boots the lab's guest (images/vm.sh: a Debian kernel and root filesystem) under qemu and runs a
// script in it, with a host directory shared over 9p. It is how the lab reaches kernel features this machine's
// kernel lacks (sch_netem, sch_plug) and how it compares kernels: the guest's kernel is Debian's own, its
// release recorded in the image's kernel.txt.
//
// qemu runs under software emulation (TCG): this machine's /dev/kvm is a paravirtual KVM that crashes stock
// kernels. A process start in the guest takes ~0.13 s, so the guest is for functional checks and low rates.
package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// BuildHint says how to get the image and qemu.
const BuildHint = "build the guest with `make vm-image` (images/vm.sh: installs qemu-system-x86 and mmdebstrap, " +
	"then builds from this machine's apt sources in a few minutes)"

// Image is a built guest.
type Image struct {
	Dir string
	// Kernel is the guest kernel's release (uname -r), Package its Debian package and version, Suite the
	// Debian suite of the root filesystem.
	Kernel, Package, Suite string
}

// DefaultDir is where images/vm.sh puts the guest of suite, relative to the repository root: $FAULTLAB_VM_DIR
// when set, else images/out/vm/SUITE under root.
func DefaultDir(root, suite string) string {
	if d := os.Getenv("FAULTLAB_VM_DIR"); d != "" {
		return d
	}
	return filepath.Join(root, "images", "out", "vm", suite)
}

// buildHint is BuildHint with the suite of dir when it is a guest's directory (images/out/vm/SUITE).
func buildHint(dir string) string {
	for _, k := range Kernels {
		if filepath.Base(dir) == k.Suite {
			return strings.Replace(BuildHint, "`make vm-image`", "`make vm-image VM_SUITE="+k.Suite+"`", 1)
		}
	}
	return BuildHint
}

// ErrNoImage is returned by Open when the guest or qemu is missing.
var ErrNoImage = errors.New("no guest image")

// Open reads a built guest from dir and checks that qemu is installed.
func Open(dir string) (*Image, error) {
	im, err := read(dir)
	if err != nil {
		return nil, err
	}
	return im, im.qemu()
}

// read reads a built guest from dir.
func read(dir string) (*Image, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kernel.txt"))
	if err != nil {
		return nil, fmt.Errorf("%w in %s: %s", ErrNoImage, dir, buildHint(dir))
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 3 {
		return nil, fmt.Errorf("%s/kernel.txt: want 3 lines (release, package, suite), have %d: rebuild with FORCE=1 make vm-image", dir, len(lines))
	}
	for _, f := range []string{"vmlinuz", "initrd.img", "root.img"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("%w: %s/%s missing: %s", ErrNoImage, dir, f, buildHint(dir))
		}
	}
	return &Image{Dir: dir, Kernel: lines[0], Package: lines[1], Suite: lines[2]}, nil
}

// qemu checks that qemu is installed.
func (im *Image) qemu() error {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return fmt.Errorf("%w: qemu-system-x86_64 not installed: %s", ErrNoImage, buildHint(im.Dir))
	}
	return nil
}

// Options size a boot.
type Options struct {
	CPUs     int           // default 2
	MemoryMB int           // default 2048
	Timeout  time.Duration // the whole boot, run and power-off; default 10 minutes
	// Console, when set, receives the guest's console (kernel messages and fl-init's lines).
	Console io.Writer
	// Output, when set, receives run.sh's output as it is written (out.log, polled twice a second).
	Output io.Writer
}

// Result is what a run left in the share.
type Result struct {
	ExitCode int           // run.sh's exit status
	Output   []byte        // run.sh's stdout and stderr (out.log)
	Elapsed  time.Duration // boot to power-off
}

// Run boots the guest with share mounted on /host and runs script (written to share/run.sh) in it with /host
// as its working directory; it returns when the guest has powered off. The root filesystem is booted with
// qemu -snapshot: nothing a run does persists in the image. Files the script writes under /host are the way
// results come back. A cancelled ctx kills qemu.
func (im *Image) Run(ctx context.Context, share, script string, o Options) (*Result, error) {
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 2048
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Minute
	}
	share, err := filepath.Abs(share)
	if err != nil {
		return nil, err
	}
	for _, f := range []string{"rc", "out.log"} {
		_ = os.Remove(filepath.Join(share, f))
	}
	if err := os.WriteFile(filepath.Join(share, "run.sh"), []byte(script), 0o755); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-machine", "q35,accel=tcg", "-cpu", "max", "-smp", strconv.Itoa(o.CPUs), "-m", strconv.Itoa(o.MemoryMB),
		"-kernel", filepath.Join(im.Dir, "vmlinuz"), "-initrd", filepath.Join(im.Dir, "initrd.img"),
		"-append", "root=LABEL=faultlab rw console=ttyS0 init=/sbin/fl-init panic=-1 quiet",
		"-drive", "file="+filepath.Join(im.Dir, "root.img")+",format=raw,if=virtio,snapshot=on",
		"-virtfs", "local,path="+share+",mount_tag=host,security_model=none,id=host",
		"-nic", "none", "-nographic", "-no-reboot", "-serial", "stdio", "-monitor", "none")
	var console bytes.Buffer
	w := io.Writer(&console)
	if o.Console != nil {
		w = io.MultiWriter(&console, o.Console)
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("qemu: %v", err)
	}
	stopFollow := follow(filepath.Join(share, "out.log"), o.Output)
	err = cmd.Wait()
	stopFollow()
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("guest %s: no power-off within %s (%v); console tail:\n%s", im.Kernel, o.Timeout,
			ctx.Err(), tail(console.Bytes(), 20))
	}
	if err != nil {
		return nil, fmt.Errorf("qemu: %v; console tail:\n%s", err, tail(console.Bytes(), 20))
	}
	out, _ := os.ReadFile(filepath.Join(share, "out.log"))
	rc, err := os.ReadFile(filepath.Join(share, "rc"))
	if err != nil {
		return nil, fmt.Errorf("guest %s powered off without running run.sh; console tail:\n%s", im.Kernel,
			tail(console.Bytes(), 20))
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(rc)))
	if err != nil {
		return nil, fmt.Errorf("guest's rc file %q: %v", rc, err)
	}
	return &Result{ExitCode: code, Output: out, Elapsed: elapsed}, nil
}

// follow copies what is appended to file to w until the returned function is called (which copies the rest).
func follow(file string, w io.Writer) func() {
	if w == nil {
		return func() {}
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		var off int64
		copyNew := func() {
			f, err := os.Open(file)
			if err != nil {
				return
			}
			defer f.Close()
			if _, err := f.Seek(off, io.SeekStart); err == nil {
				n, _ := io.Copy(w, f)
				off += n
			}
		}
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				copyNew()
				return
			case <-t.C:
				copyNew()
			}
		}
	}()
	return func() { close(done); <-finished }
}

// tail is the last n lines of b.
func tail(b []byte, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
