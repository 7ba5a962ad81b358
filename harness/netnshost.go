package harness

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// DoIn runs fn on a fresh OS thread switched into the network namespace that nsPath opens (a bind mount
// under /var/run/netns, or /proc/PID/ns/net). The goroutine is locked to its thread for the whole call; if
// switching back fails, the thread stays locked and the runtime kills it when the goroutine exits, so no
// goroutine ever runs on a thread left in the wrong namespace. Sockets created by fn belong to the namespace
// for their whole life, and a child forked by fn starts inside it.
func DoIn(nsPath string, fn func() error) error {
	target, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", nsPath, err)
	}
	defer unix.Close(target)
	return OnLockedThread(func() error {
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter netns %s: %w", nsPath, err)
		}
		return fn()
	})
}

// OnLockedThread runs fn on a fresh goroutine locked to its OS thread, which starts in the lab process's own
// network namespace. fn may switch the thread's network namespace (setns, or unshare to create one): the
// thread is switched back before it is unlocked, and stays locked (so the runtime discards it) if that fails.
func OnLockedThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Every unlocked thread is in the lab process's own namespace, so this is where to come back to.
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer unix.Close(orig)
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("switch back to original netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// NetnsID identifies a network namespace: the device and inode of its nsfs file.
type NetnsID struct {
	Dev uint64
	Ino uint64
}

func (id NetnsID) String() string { return fmt.Sprintf("net:[%d]", id.Ino) }

// NetnsIDOf stats path (a namespace bind mount or a /proc/PID/ns/net link) and returns the namespace's id.
func NetnsIDOf(path string) (NetnsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return NetnsID{}, fmt.Errorf("stat netns %s: %w", path, err)
	}
	return NetnsID{Dev: st.Dev, Ino: st.Ino}, nil
}

// procNetInitIno is init_net's fixed inode number on kernels that give it one (0xEFFFFFF9, Linux 6.18);
// dynamically allocated namespace inodes start at 0xF0000000, so no other namespace can have it.
const procNetInitIno = 0xEFFFFFF9

var (
	homeOnce sync.Once
	homeID   NetnsID
	homeErr  error
)

// homeNetns is the lab process's own network namespace: the one every unlocked thread is in.
func homeNetns() (NetnsID, error) {
	homeOnce.Do(func() {
		homeErr = OnLockedThread(func() error {
			var err error
			homeID, err = NetnsIDOf("/proc/thread-self/ns/net")
			return err
		})
	})
	return homeID, homeErr
}

// IsRootNetns reports whether id is the root network namespace: PID 1's namespace (when readable), the
// kernel's initial namespace, or the namespace the lab process itself runs in. Whatever the lab must never
// change is in one of those.
func IsRootNetns(id NetnsID) (bool, error) {
	if id.Ino == procNetInitIno {
		return true, nil
	}
	home, err := homeNetns()
	if err != nil {
		return false, err
	}
	if id == home {
		return true, nil
	}
	// PID 1's namespace may be unreadable (EACCES under some supervisors): then the two checks above stand.
	if init, err := NetnsIDOf("/proc/1/ns/net"); err == nil && id == init {
		return true, nil
	}
	return false, nil
}

// currentThreadNetns is the network namespace of the calling thread (meaningful only on a locked thread).
func currentThreadNetns() (NetnsID, error) { return NetnsIDOf("/proc/thread-self/ns/net") }

// doInLab is DoIn for work that must never happen in the root namespace: it checks, on the switched thread,
// that the thread is not in the root namespace before running fn.
func doInLab(h NetnsHost, what string, fn func() error) error {
	return h.Do(func() error {
		id, err := currentThreadNetns()
		if err != nil {
			return err
		}
		root, err := IsRootNetns(id)
		if err != nil {
			return err
		}
		if root {
			return fmt.Errorf("%s: host %s (%s) is the root network namespace: refusing", what, h.Name(), id)
		}
		return fn()
	})
}
