package harness

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// SocketFactory creates sockets inside a namespace for code that runs in the lab process (the load generator):
// a socket belongs to the namespace of the thread that created it, and after creation it can be used from any
// goroutine. The factory owns one OS thread switched into the namespace for its whole life, so creating a
// socket costs a channel round trip instead of two setns calls; Close switches the thread back.
type SocketFactory struct {
	reqs chan sockReq
	done chan struct{}
}

type sockReq struct {
	family int
	resp   chan sockResp
}

type sockResp struct {
	fd  int
	err error
}

// NewSocketFactory starts a factory in the namespace at nsPath.
func NewSocketFactory(nsPath string) (*SocketFactory, error) {
	f := &SocketFactory{reqs: make(chan sockReq), done: make(chan struct{})}
	ready := make(chan error, 1)
	go f.serve(nsPath, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return f, nil
}

func (f *SocketFactory) serve(nsPath string, ready chan<- error) {
	runtime.LockOSThread()
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		ready <- fmt.Errorf("socket factory: %w", err)
		return
	}
	defer home.Close()
	if err := setnsPath(nsPath); err != nil {
		runtime.UnlockOSThread()
		ready <- fmt.Errorf("socket factory: %w", err)
		return
	}
	ready <- nil
	for {
		select {
		case r := <-f.reqs:
			fd, err := unix.Socket(r.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			r.resp <- sockResp{fd, err}
		case <-f.done:
			// Switch back before unlocking: a thread left locked in a lab namespace is destroyed by the
			// runtime, except the main thread, which would stay wedged there and mislead anything that reads
			// /proc/self/ns/net. If switching back fails, stay locked and let the runtime deal with it.
			if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			}
			return
		}
	}
}

func setnsPath(nsPath string) error {
	ns, err := os.Open(nsPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", nsPath, err)
	}
	return nil
}

// Socket returns a non-blocking, close-on-exec TCP socket of the given family created inside the namespace.
func (f *SocketFactory) Socket(family int) (int, error) {
	r := sockReq{family: family, resp: make(chan sockResp, 1)}
	select {
	case f.reqs <- r:
	case <-f.done:
		return -1, fmt.Errorf("socket factory: closed")
	}
	resp := <-r.resp
	if resp.err != nil {
		return -1, fmt.Errorf("socket: %w", resp.err)
	}
	return resp.fd, nil
}

// Close stops the factory (idempotent is not required: call once).
func (f *SocketFactory) Close() { close(f.done) }
