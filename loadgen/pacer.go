package loadgen

import (
	"context"
	"math"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// schedule is an open-loop constant-rate schedule: attempt i is due at start + i/rate, computed from i alone so
// no rounding error accumulates, for i in [0, n).
type schedule struct {
	start time.Time
	rate  float64 // attempts per second
	n     uint64
}

// newSchedule covers [start, start+dur): exactly the attempts whose offset is below dur, which is rate*dur when
// that product is a whole number.
func newSchedule(start time.Time, rate float64, dur time.Duration) schedule {
	return schedule{start: start, rate: rate, n: scheduleCount(rate, dur)}
}

// scheduleOffset is attempt i's due time relative to the schedule's start.
func scheduleOffset(i uint64, rate float64) time.Duration {
	return time.Duration(float64(i) * float64(time.Second) / rate)
}

// scheduleCount is the number of i with scheduleOffset(i, rate) < dur.
func scheduleCount(rate float64, dur time.Duration) uint64 {
	if rate <= 0 || dur <= 0 {
		return 0
	}
	n := uint64(math.Ceil(rate * dur.Seconds()))
	for n > 0 && scheduleOffset(n-1, rate) >= dur {
		n--
	}
	for scheduleOffset(n, rate) < dur {
		n++
	}
	return n
}

func (s schedule) at(i uint64) time.Time { return s.start.Add(scheduleOffset(i, s.rate)) }

// pacer launches the attempts of a schedule at their due times. It sleeps until the next due time, then launches
// every attempt that is due (a late wake-up catches up in one batch). Each launch first takes a slot of slots,
// the in-flight limit; when none is free the pacer waits for one, so the attempt starts late with its intended
// time unchanged and the lag shows in the records. No attempt is ever skipped, only cancellation stops it.
//
// Go timers wake up to ~1 ms late when the process is idle (the netpoller sleeps in whole milliseconds), which
// at thousands of attempts per second would batch them. So the pacer runs on its own locked thread with a 1 ns
// timer slack: it sleeps on a Go timer until shortly before the due time (so cancellation stays responsive) and
// the rest in nanosleep, which wakes within ~10 µs.
type pacer struct {
	sched schedule
	slots chan struct{}
	// launch starts attempt i (due at intended) on its own goroutine; that goroutine must release the slot. It
	// is called from the pacer's goroutine, which has ended when run returns.
	launch func(i uint64, intended time.Time)
}

// fineSleep is the part of a wait slept in nanosleep rather than on a Go timer.
const fineSleep = 2 * time.Millisecond

type paceResult struct {
	n   uint64
	err error
}

// run paces the whole schedule. It returns the number of attempts launched and ctx.Err() when ctx ended it early.
func (p *pacer) run(ctx context.Context) (uint64, error) {
	done := make(chan paceResult, 1)
	go func() {
		// The thread stays locked: it exits with this goroutine, taking its timer slack with it.
		runtime.LockOSThread()
		unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
		n, err := p.loop(ctx)
		done <- paceResult{n, err}
	}()
	r := <-done
	return r.n, r.err
}

func (p *pacer) loop(ctx context.Context) (uint64, error) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var i uint64
	for i < p.sched.n {
		if err := sleepUntil(ctx, timer, p.sched.at(i)); err != nil {
			return i, err
		}
		now := time.Now()
		for ; i < p.sched.n; i++ {
			due := p.sched.at(i)
			if due.After(now) {
				break
			}
			if err := p.acquire(ctx); err != nil {
				return i, err
			}
			p.launch(i, due)
		}
	}
	return i, nil
}

// sleepUntil sleeps until t: on timer while more than fineSleep remains, then in nanosleep.
func sleepUntil(ctx context.Context, timer *time.Timer, t time.Time) error {
	for {
		wait := time.Until(t)
		if wait <= 0 {
			return nil
		}
		if wait > fineSleep {
			timer.Reset(wait - fineSleep/2)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timer.C:
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		ts := unix.NsecToTimespec(int64(wait))
		unix.Nanosleep(&ts, nil) // EINTR (the runtime's preemption signal) just loops
	}
}

// acquire takes an in-flight slot, waiting for one if the limit is reached.
func (p *pacer) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
