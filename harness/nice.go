package harness

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// DaemonNice is how far below the lab's own threads the processes the lab starts (proxies, servers, their
// reloads and checks) run: nice +5, a third of the CPU weight of the lab's threads when both want a core.
//
// The load generator, the capture, the samplers and the userspace impairment engine run in the lab's process
// and share these machines' two cores with the system under test. Every claim assumes the generator offers its
// load open loop, on schedule; on a real deployment the clients have CPUs of their own. At equal priority the
// reload scenario's Tengine cells delayed attempts by up to 0.5 s at the 99th percentile (3,000 connections/s,
// 10 reloads/s), a master-worker cell once by 0.77 s in CI, and the lag guard rightly discarded the cell; with
// the daemons at +5 the same matrix kept every repetition's lag p99 under 0.15 s (docs/architecture.md). The
// system under test still gets every cycle the lab does not use; what it loses when both want the CPU shows as
// its own failures (timeouts), which count against it.
const DaemonNice = 5

// StartLowered calls start (an exec.Cmd's Start) on a thread whose nice is raised by DaemonNice for the call,
// so the forked child inherits the lower priority (Linux keeps nice per thread); the thread's nice is put back
// afterwards. A thread whose nice cannot be put back stays locked to this goroutine, so the Go runtime
// discards it rather than run the lab's goroutines at the daemons' priority.
func StartLowered(start func() error) error {
	runtime.LockOSThread()
	tid := unix.Gettid()
	// The raw getpriority system call returns 20 - nice.
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("read the thread's nice: %w", err)
	}
	nice := 20 - prio
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice+DaemonNice); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lower the priority of the process to start (nice %+d): %w", nice+DaemonNice, err)
	}
	serr := start()
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil {
		// Leave the thread locked: it ends with this goroutine's lock count above zero.
		return fmt.Errorf("restore the lab thread's nice %+d after starting a process: %w (start: %v)", nice,
			err, serr)
	}
	runtime.UnlockOSThread()
	return serr
}

// Nice is the nice value of the calling thread (the lab's own priority, which DaemonNice is relative to).
func Nice() (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	return 20 - prio, err
}
