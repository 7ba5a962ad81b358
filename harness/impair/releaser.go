package impair

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"golang.org/x/sys/unix"
)

// noDue is the releaser's sleep target when nothing is held.
const noDue = math.MaxInt64

// releaseEarly releases packets this close to their due time in the same wake-up rather than sleeping
// again for a few microseconds (a wake-up costs more than that).
const releaseEarly = int64(15 * time.Microsecond)

// releaser runs on its own OS thread for the program's life: release what is due, then sleep in ppoll on
// the eventfd until the next due time. The thread is never unlocked (its priority and timer slack were
// changed), so it exits with the goroutine. (An unlocked goroutine that moves its priority from thread
// to thread was tried: the Go scheduler's forced preemptions, every 10 ms for a goroutine holding its P,
// got cheaper, but wake-ups ran late more often; locked measured better.)
func (q *queueProgram) releaser() {
	runtime.LockOSThread()
	defer close(q.done)
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	prio := raisePriority()
	q.statsMu.Lock()
	q.priority = prio
	q.statsMu.Unlock()
	var v verdicts
	fds := []unix.PollFd{{Fd: int32(q.efd), Events: unix.POLLIN}}
	var buf [8]byte
	take := func(a arrival) {
		if a.held {
			q.pend.pushHeld(a.id, a.due)
		} else {
			q.pend.push(a.id, a.due, a.drop)
		}
	}
	for {
		q.ring.drain(take)
		now := q.now()
		if q.pend.held > 0 && !q.holding.Load() {
			q.pend.releaseHeld(now)
		}
		q.pend.collect(now+releaseEarly, &v)
		next, ok := q.pend.nextDue()
		if !ok {
			next = noDue
		}
		q.sleepUntil.Store(next) // before the last look at the ring (see push)
		q.pending.Store(int64(q.pend.len()))
		q.local.maxPending = max(q.local.maxPending, q.pend.len()+len(v.accepted)+len(v.single))
		if len(v.single) > 0 || v.hasBatch {
			sent := q.now()
			err := q.send(&v)
			q.account(&v, sent, err)
			continue
		}
		if !q.ring.empty() {
			continue
		}
		if q.stopping.Load() {
			q.publish(true)
			return
		}
		q.publish(false)
		var ts *unix.Timespec
		if next != noDue {
			t := unix.NsecToTimespec(max(next-q.now(), 0))
			ts = &t
		}
		if err := ppollRaw(fds, ts); err != nil && !errors.Is(err, unix.EINTR) {
			q.fail(fmt.Errorf("ppoll: %w", err))
			q.publish(true)
			return
		}
		_, _ = unix.Read(q.efd, buf[:])
	}
}

// Verdict messages (include/uapi/linux/netfilter/nfnetlink_queue.h), written by the releaser itself: one
// datagram carries all the verdicts of a wake-up, and the raw sendto keeps the thread's P (see ppollRaw).
// Through go-nfqueue's SetVerdict each verdict is a send that the Go scheduler may preempt, and on a busy
// machine getting the P back took up to hundreds of milliseconds.
const (
	nfnlSubsysQueue      = 3
	nfqnlMsgVerdict      = 1
	nfqnlMsgVerdictBatch = 3
	nfqaVerdictHdr       = 2
	verdictMsgLen        = unix.SizeofNlMsghdr + 4 + 4 + 8 // header, nfgenmsg, attribute header, verdict_hdr
)

// appendVerdict appends one verdict message: accept or drop id (batch: every queued id up to id).
func appendVerdict(b []byte, queue uint16, id uint32, drop, batch bool) []byte {
	typ := uint16(nfnlSubsysQueue<<8 | nfqnlMsgVerdict)
	if batch {
		typ = nfnlSubsysQueue<<8 | nfqnlMsgVerdictBatch
	}
	verdict := uint32(nfqueue.NfAccept)
	if drop {
		verdict = nfqueue.NfDrop
	}
	b = binary.NativeEndian.AppendUint32(b, verdictMsgLen)
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, unix.NLM_F_REQUEST)
	b = binary.NativeEndian.AppendUint32(b, 0) // sequence
	b = binary.NativeEndian.AppendUint32(b, 0) // port id
	b = append(b, unix.AF_UNSPEC, 0)           // nfgenmsg: family, version
	b = binary.BigEndian.AppendUint16(b, queue)
	b = binary.NativeEndian.AppendUint16(b, 12) // attribute length
	b = binary.NativeEndian.AppendUint16(b, nfqaVerdictHdr)
	b = binary.BigEndian.AppendUint32(b, verdict)
	return binary.BigEndian.AppendUint32(b, id)
}

// send sends the verdicts in one datagram: singles (drops and out-of-order accepts) first, then the
// batch; the kernel handles the messages of a datagram in order.
func (q *queueProgram) send(v *verdicts) error {
	b := q.sendBuf[:0]
	for _, s := range v.single {
		b = appendVerdict(b, q.num, s.id, s.drop, false)
	}
	if v.hasBatch {
		b = appendVerdict(b, q.num, v.batch, false, true)
	}
	q.sendBuf = b
	to := unix.RawSockaddrNetlink{Family: unix.AF_NETLINK}
	for try := 0; ; try++ {
		_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(q.fd), uintptr(unsafe.Pointer(&b[0])),
			uintptr(len(b)), 0, uintptr(unsafe.Pointer(&to)), unix.SizeofSockaddrNetlink)
		switch {
		case e == 0:
			return nil
		case (e == unix.EAGAIN || e == unix.ENOBUFS || e == unix.EINTR) && try < 100:
			time.Sleep(100 * time.Microsecond)
		default:
			return fmt.Errorf("send %d verdicts: %w", len(b)/verdictMsgLen, e)
		}
	}
}

func (q *queueProgram) account(v *verdicts, sent int64, err error) {
	for _, due := range v.accepted {
		q.local.late = append(q.local.late, time.Duration(sent-due))
	}
	q.local.released += uint64(len(v.accepted))
	for _, s := range v.single {
		if s.drop {
			q.local.dropped++
		}
	}
	if err != nil {
		q.fail(err)
	}
}

// publish merges the releaser's counters into the shared ones: at once if force, else only if no reader
// holds them (never wait).
func (q *queueProgram) publish(force bool) {
	if force {
		q.statsMu.Lock()
	} else if !q.statsMu.TryLock() {
		return
	}
	defer q.statsMu.Unlock()
	for _, d := range q.local.late {
		q.late.add(d)
	}
	q.shared.released += q.local.released
	q.shared.dropped += q.local.dropped
	q.shared.maxPending = max(q.shared.maxPending, q.local.maxPending)
	q.local = releaseStats{late: q.local.late[:0], maxPending: q.local.maxPending}
}

func (q *queueProgram) fail(err error) {
	q.statsMu.Lock()
	defer q.statsMu.Unlock()
	if len(q.errs) < 10 {
		q.errs = append(q.errs, err)
	}
}

func (q *queueProgram) prio() string {
	q.statsMu.Lock()
	defer q.statsMu.Unlock()
	return q.priority
}

// stop waits up to drain for held packets to be released, then stops both loops and closes the socket
// (the kernel drops whatever is still held). It returns the errors the loops met.
func (q *queueProgram) stop(drain time.Duration) error {
	deadline := time.Now().Add(drain)
	for (q.pending.Load() > 0 || !q.ring.empty()) && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	q.stopping.Store(true)
	q.wake()
	<-q.done
	releaseP()
	k, kerr := readProcQueue(q.router.Do, q.num)
	q.cancel()
	err := q.nf.Close() // waits for the receiver to return
	unix.Close(q.efd)
	if q.tsFD >= 0 {
		unix.Close(q.tsFD)
	}
	q.statsMu.Lock()
	defer q.statsMu.Unlock()
	if kerr == nil {
		q.lastProc = k
	}
	q.mergeLag()
	return errors.Join(append(q.errs, ignoreClosed(err))...)
}

func ignoreClosed(err error) error {
	if err != nil && strings.Contains(err.Error(), "use of closed") {
		return nil
	}
	return err
}

// stats fills the program's counters; queued is the nft queue rules' total.
func (q *queueProgram) stats(queued uint64) *QueueStats {
	stopped := q.stopping.Load()
	q.statsMu.Lock()
	proc := q.lastProc
	s := &QueueStats{Queued: queued, Released: q.shared.released, Dropped: q.shared.dropped,
		Pending: int(q.pending.Load()), MaxPending: q.shared.maxPending, LateP50: q.late.quantile(0.5),
		LateP99: q.late.quantile(0.99), LateMax: q.late.max, LateMean: q.late.mean(),
		RecvLagP50: q.lag.quantile(0.5), RecvLagP99: q.lag.quantile(0.99), Timestamped: q.tsSeen.Load()}
	q.statsMu.Unlock()
	s.Seen, s.IDGaps, s.ENOBUFS, s.Stale = q.seen.Load(), q.gaps.Load(), q.enobufs.Load(), q.stale.Load()
	if queued > s.Seen {
		s.Overflow = queued - s.Seen
	}
	if !stopped {
		if k, err := readProcQueue(q.router.Do, q.num); err == nil {
			proc = k
		}
	}
	s.KernelIDs, s.KernelDropped, s.UserDropped = proc.idSeq, proc.dropped, proc.userDropped
	return s
}

type procQueue struct{ idSeq, dropped, userDropped uint64 }

// readProcQueue reads queue num's line of /proc/net/netfilter/nfnetlink_queue as the router namespace
// sees it: queue_number peer_portid queue_total copy_mode copy_range queue_dropped user_dropped id_sequence 1.
func readProcQueue(do func(func() error) error, num uint16) (procQueue, error) {
	var pq procQueue
	found := false
	err := do(func() error {
		f, err := os.Open("/proc/thread-self/net/netfilter/nfnetlink_queue")
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 8 || fs[0] != strconv.Itoa(int(num)) {
				continue
			}
			pq.dropped, _ = strconv.ParseUint(fs[5], 10, 64)
			pq.userDropped, _ = strconv.ParseUint(fs[6], 10, 64)
			pq.idSeq, _ = strconv.ParseUint(fs[7], 10, 64)
			found = true
		}
		return sc.Err()
	})
	if err == nil && !found {
		err = fmt.Errorf("nfqueue %d not in nfnetlink_queue", num)
	}
	return pq, err
}

// ppollRaw is ppoll without telling the Go scheduler: the releaser keeps its P while it sleeps, so on
// waking it runs at once instead of waiting for a P that busy goroutines (a load generator in the same
// process) may hold. The cost is one P, which startQueue adds to GOMAXPROCS (holdP). A signal (the
// runtime's preemption, a GC stop) interrupts the sleep with EINTR.
func ppollRaw(fds []unix.PollFd, ts *unix.Timespec) error {
	_, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)),
		uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// raisePriority gives the calling thread SCHED_FIFO priority 10 (it sleeps almost all the time, and
// must wake on time on a machine busy with other work), or else nice -20; it says which it got.
func raisePriority() string {
	param := struct{ priority int32 }{10}
	_, _, e := unix.RawSyscall(unix.SYS_SCHED_SETSCHEDULER, uintptr(unix.Gettid()), uintptr(unix.SCHED_FIFO),
		uintptr(unsafe.Pointer(&param)))
	if e == 0 {
		return "SCHED_FIFO 10"
	}
	if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), -20); err == nil {
		return "nice -20"
	}
	return "normal"
}

var holdMu sync.Mutex

// holdP adds one P to GOMAXPROCS for each running releaser (which keeps its P while asleep) and
// releaseP takes it back, so the rest of the process keeps the parallelism it had.
func holdP() {
	holdMu.Lock()
	defer holdMu.Unlock()
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
}

func releaseP() {
	holdMu.Lock()
	defer holdMu.Unlock()
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0)-1, 1))
}
