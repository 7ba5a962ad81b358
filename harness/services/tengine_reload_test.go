package services

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/testutil"
)

// TestTengineReloadKeepsListeners shows the mechanism the reload scenario's Tengine cells rest on: a reload
// (SIGHUP to the master) hands the new workers the very listening sockets the old ones used, with and without
// reuseport, so no queued connection sits in a socket that closes. Without reuseport there is one socket; with
// reuseport one per worker (2 here), and after three reloads the same sockets (inodes) listen, the old
// workers gone. The exception: a reload to fewer workers with reuseport closes the surplus sockets.
func TestTengineReloadKeepsListeners(t *testing.T) {
	lab := newLab(t)
	if bins, _ := FindBinaries("tengine", nil); bins[0].Err != nil {
		testutil.SkipMissing(t, bins[0].Err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	web, err := NewNginx(lab.backend, t.TempDir(), at(lab.backend, 80), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = web.Stop(context.Background()) })
	if err := web.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		reuseport bool
		sockets   int
	}{{false, 1}, {true, 2}} {
		t.Run("reuseport="+strconv.FormatBool(tc.reuseport), func(t *testing.T) {
			bind := at(lab.proxy, 80)
			tg, err := NewTengine(lab.proxy, t.TempDir(), TengineConfig{Bind: bind, Servers: []netip.AddrPort{at(lab.backend, 80)},
				Options: map[string]string{"worker_processes": "2", "check": "false",
					"reuseport": strconv.FormatBool(tc.reuseport)}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tg.Stop(context.Background()) })
			if err := tg.Start(ctx); err != nil {
				t.Fatal(err)
			}
			before := listeningInodes(t, lab.proxy, bind.Port())
			if len(before) != tc.sockets {
				t.Fatalf("%d listening sockets on port %d (%v), want %d", len(before), bind.Port(), before, tc.sockets)
			}
			for i := range 3 {
				old := aliveChildren(tg.proc.PID)
				if _, err := tg.Reload(ctx); err != nil {
					t.Fatalf("reload %d: %v", i, err)
				}
				waitGone(ctx, t, tg, old)
				if after := listeningInodes(t, lab.proxy, bind.Port()); !slices.Equal(after, before) {
					t.Fatalf("after reload %d the listening sockets are %v, before %v", i, after, before)
				}
			}
			if code, _, err := httpGet(lab.client, bind, "/"); err != nil || code != 200 {
				t.Fatalf("GET after the reloads: %d %v", code, err)
			}
			if err := tg.Stop(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("reuseport-fewer-workers", func(t *testing.T) { reloadFewerWorkers(ctx, t, lab) })
}

// reloadFewerWorkers shows where an nginx-style reload does close a listening socket: with reuseport, a
// reload to fewer workers leaves the old cycle's surplus per-worker sockets unmatched, and the master closes
// them (ngx_init_cycle, "close the unnecessary listening sockets"), queue and all. The reload scenario's
// storm reloads the same configuration, so it never takes this path.
func reloadFewerWorkers(ctx context.Context, t *testing.T, lab testLab) {
	bind := at(lab.proxy, 80)
	tg, err := NewTengine(lab.proxy, t.TempDir(), TengineConfig{Bind: bind, Servers: []netip.AddrPort{at(lab.backend, 80)},
		Options: map[string]string{"worker_processes": "2", "check": "false", "reuseport": "true",
			"reload_worker_processes": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tg.Stop(context.Background()) })
	if err := tg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	two := listeningInodes(t, lab.proxy, bind.Port())
	// reload_worker_processes: the first reload goes to 1 worker, the second back to 2.
	for i, want := range []int{1, 2} {
		old := aliveChildren(tg.proc.PID)
		if _, err := tg.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		waitGone(ctx, t, tg, old)
		got := listeningInodes(t, lab.proxy, bind.Port())
		kept := len(slices.DeleteFunc(slices.Clone(got), func(ino uint32) bool { return !slices.Contains(two, ino) }))
		if len(two) != 2 || len(got) != want || kept != 1 {
			t.Errorf("reload %d: listening sockets %v, at the start %v; want %d, exactly one of them from the start "+
				"(worker 0's; the other closed, and a new one when back at 2)", i, got, two, want)
		}
		// the master forks the new workers one after another: the reload returns once one of them listens
		if err := poll(ctx, func() (bool, error) { return len(aliveChildren(tg.proc.PID)) == want, nil }); err != nil {
			t.Errorf("reload %d: workers %v, want %d: %v", i, aliveChildren(tg.proc.PID), want, err)
		}
	}
}

// waitGone waits until none of the old workers is alive.
func waitGone(ctx context.Context, t *testing.T, tg *Tengine, old []int) {
	t.Helper()
	err := poll(ctx, func() (bool, error) {
		return !slices.ContainsFunc(aliveChildren(tg.proc.PID), func(p int) bool { return slices.Contains(old, p) }), nil
	})
	if err != nil {
		t.Fatalf("old workers %v still alive after the reload: %v", old, err)
	}
}

// listeningInodes lists the inodes of the TCP sockets listening on port in h, sorted.
func listeningInodes(t *testing.T, h harness.NetnsHost, port uint16) []uint32 {
	t.Helper()
	var out []uint32
	err := h.Do(func() error {
		return harness.DiagTCP(1<<harness.TCPListen, func(s *harness.DiagSocket) {
			if s.Local.Port() == port {
				out = append(out, s.Inode)
			}
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
