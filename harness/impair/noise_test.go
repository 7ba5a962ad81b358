package impair_test

import (
	"runtime"
	"slices"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stallThreshold is how late a control thread's wake-up must be to count as a machine stall.
const stallThreshold = time.Millisecond

// machineNoise is the control for timing assertions: on every CPU a thread scheduled like the engine's
// release thread (SCHED_FIFO 10, timer slack 1 ns, pinned to the CPU) sleeps 1 ms at a time in ppoll
// for d. It returns how late the wake-ups were (sorted) and the intervals in which some CPU woke a thread
// more than stallThreshold late: stalls of the machine (other builds, the hypervisor), which no
// userspace engine can beat. On the shared 2-core lab machines they reached 10-65 ms.
type machineNoise struct {
	late   []time.Duration
	stalls [][2]time.Time
}

func measureNoise(d time.Duration) machineNoise {
	var mu sync.Mutex
	var n machineNoise
	var wg sync.WaitGroup
	for cpu := range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // never unlocked: the thread's scheduling was changed
			var set unix.CPUSet
			set.Set(cpu)
			_ = unix.SchedSetaffinity(0, &set)
			param := struct{ priority int32 }{10}
			_, _, _ = unix.RawSyscall(unix.SYS_SCHED_SETSCHEDULER, uintptr(unix.Gettid()),
				uintptr(unix.SCHED_FIFO), uintptr(unsafe.Pointer(&param)))
			_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
			var late []time.Duration
			var stalls [][2]time.Time
			for end := time.Now().Add(d); time.Now().Before(end); {
				due := time.Now().Add(time.Millisecond)
				ts := unix.NsecToTimespec(int64(time.Millisecond))
				// An ordinary system call, which gives up the goroutine's P while it sleeps: the
				// control must not take CPU time or Ps from what it measures.
				_, _, _ = unix.Syscall6(unix.SYS_PPOLL, 0, 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
				now := time.Now()
				l := now.Sub(due)
				late = append(late, l)
				if l > stallThreshold {
					stalls = append(stalls, [2]time.Time{due, now})
				}
			}
			mu.Lock()
			defer mu.Unlock()
			n.late = append(n.late, late...)
			n.stalls = append(n.stalls, stalls...)
		}()
	}
	wg.Wait()
	slices.Sort(n.late)
	return n
}

// overlaps reports whether [from, to] meets a stall.
func (n machineNoise) overlaps(from, to time.Time) bool {
	for _, s := range n.stalls {
		if !s[1].Before(from) && !s[0].After(to) {
			return true
		}
	}
	return false
}
