package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/faultlab/faultlab/harness"
	"golang.org/x/sys/unix"
)

// LockDir holds one lock file per netns run, <prefix>.lock, share-locked by the lab process from before its
// first namespace exists until after its last is gone. Clean takes it exclusively before touching a run, so
// it can never sweep a run that is still being built: the router namespace's own lock (also taken) only
// exists once that namespace is mounted, and a run caught between creating the file and locking it looked
// dead. A variable so that tests can point it elsewhere.
var LockDir = "/run/faultlab"

const lockSuffix = ".lock"

func lockPath(prefix string) string { return filepath.Join(LockDir, prefix+lockSuffix) }

// lockRun creates the run's lock file and share-locks it; c releases and removes it (registered before any
// namespace, so it runs last).
func lockRun(c *harness.Cleanup, prefix string) error {
	if err := os.MkdirAll(LockDir, 0o755); err != nil {
		return fmt.Errorf("lock run %s: %w", prefix, err)
	}
	path := lockPath(prefix)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o444)
	if err != nil {
		return fmt.Errorf("lock run %s: %w", prefix, err) // a prefix clash: nothing created
	}
	if err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		os.Remove(path)
		return fmt.Errorf("lock run %s: %w", prefix, err)
	}
	c.Add("run lock "+prefix, func() error {
		err := os.Remove(path)
		unix.Close(fd)
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		return err
	})
	return nil
}

// tryExclusive opens path and takes an exclusive flock without blocking. live is true when another
// process holds a lock on it; otherwise release closes it (a no-op when path does not exist).
func tryExclusive(path string) (release func(), live bool) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return func() {}, false
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
		unix.Close(fd)
		return nil, true
	}
	return func() { unix.Close(fd) }, false
}

// takeRun tries to lock a run exclusively, through its lock file and its router namespace. live is true
// when a lab process holds either; otherwise unlock releases both.
func takeRun(prefix string) (unlock func(), live bool) {
	releaseFile, live := tryExclusive(lockPath(prefix))
	if live {
		return nil, true
	}
	releaseRouter, live := tryExclusive(filepath.Join(NetnsDir, prefix+"-"+RouterName))
	if live {
		releaseFile()
		return nil, true
	}
	return func() { releaseRouter(); releaseFile() }, false
}

// runLive reports whether a lab process holds the run's lock.
func runLive(prefix string) bool {
	unlock, live := takeRun(prefix)
	if !live {
		unlock()
	}
	return live
}

// sweepLocks removes the lock files no living run holds (runs SIGKILLed before or after their namespaces
// existed), limited to prefix when it is not empty, and returns the prefixes removed.
func sweepLocks(prefix string) ([]string, error) {
	ents, err := os.ReadDir(LockDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", LockDir, err)
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		p, ok := strings.CutSuffix(e.Name(), lockSuffix)
		if !ok || !strings.HasPrefix(p, harness.PrefixBase) || (prefix != "" && p != prefix) {
			continue
		}
		release, live := tryExclusive(lockPath(p))
		if live {
			continue
		}
		if err := os.Remove(lockPath(p)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		} else {
			removed = append(removed, p)
		}
		release()
	}
	return removed, errors.Join(errs...)
}
