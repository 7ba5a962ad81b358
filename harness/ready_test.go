package harness_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
)

func TestWaitTCP(t *testing.T) {
	env := buildLab(t)
	backend, client := labHost(t, env, "backend"), labHost(t, env, "client")
	addr := netip.AddrPortFrom(backend.Addrs()[0], 7001)

	// Nothing listens: the error names the address, the host and the errno.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := harness.WaitTCP(ctx, client, addr)
	if err == nil {
		t.Fatal("WaitTCP succeeded with no listener")
	}
	for _, want := range []string{addr.String(), "host client", "ECONNREFUSED"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}

	// A listener that appears later is found.
	lnc := make(chan net.Listener, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		var ln net.Listener
		if err := backend.Do(func() (err error) { ln, err = net.Listen("tcp", addr.String()); return }); err != nil {
			t.Error(err)
		}
		lnc <- ln
	}()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	start := time.Now()
	if err := harness.WaitTCP(ctx2, client, addr); err != nil {
		t.Fatal(err)
	}
	if ln := <-lnc; ln != nil {
		ln.Close()
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("WaitTCP returned after %v, before the listener existed", d)
	}
}

func TestWaitFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "haproxy.pid")
	go func() {
		time.Sleep(50 * time.Millisecond)
		os.WriteFile(path, []byte("1\n"), 0o644)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := harness.WaitFile(ctx, path); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if err := harness.WaitFile(ctx2, path+".missing"); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("error %v", err)
	}
}

const listenHelperEnv = "FAULTLAB_LISTEN_HELPER"

// TestListenHelper is not a test: started in a lab host by TestListeningAmong, it listens and waits.
func TestListenHelper(t *testing.T) {
	addr := os.Getenv(listenHelperEnv)
	if addr == "" {
		t.Skip("helper process for TestListeningAmong")
	}
	if _, err := net.Listen("tcp", addr); err != nil {
		t.Fatal(err)
	}
	select {}
}

func TestListeningAmong(t *testing.T) {
	env := buildLab(t)
	h := labHost(t, env, "backend")
	addr := netip.AddrPortFrom(h.Addrs()[0], 7002)
	ctx := context.Background()
	lis, err := h.Start(ctx, harness.ProcSpec{Name: "listener", Argv: []string{os.Args[0], "-test.run=^TestListenHelper$"},
		Env: []string{listenHelperEnv + "=" + addr.String()}})
	if err != nil {
		t.Fatal(err)
	}
	idle, err := h.Start(ctx, harness.ProcSpec{Name: "idle", Argv: []string{"sleep", "300"}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := harness.WaitTCP(wctx, h, addr); err != nil {
		t.Fatal(err)
	}
	const gone = 1 << 30 // no such PID
	got, err := harness.ListeningAmong(h, 7002, []int{idle.PID, gone, lis.PID})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int{lis.PID}) {
		t.Errorf("listening among: %v, want [%d]", got, lis.PID)
	}
	if got, _ := harness.ListeningAmong(h, 7003, []int{lis.PID}); len(got) != 0 {
		t.Errorf("other port: %v", got)
	}
	// The lab process's own listener inside the namespace counts too (matched by socket inode).
	var ln net.Listener
	if err := h.Do(func() (err error) { ln, err = net.Listen("tcp", ":7004"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got, _ := harness.ListeningAmong(h, 7004, []int{lis.PID, os.Getpid()}); !slices.Equal(got, []int{os.Getpid()}) {
		t.Errorf("own listener: %v", got)
	}
	// The same port in another namespace does not count.
	if got, _ := harness.ListeningAmong(labHost(t, env, "client"), 7002, []int{lis.PID}); len(got) != 0 {
		t.Errorf("listener seen from another namespace: %v", got)
	}
}
