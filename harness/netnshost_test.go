package harness_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/netns"
	"github.com/faultlab/faultlab/harness/testutil"
)

// buildLab builds a two-host lab (client, backend) with the netns provider, closed at the end of the test.
func buildLab(t *testing.T) *harness.Env {
	t.Helper()
	testutil.RequireRoot(t)
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo := harness.Topology{Hosts: []harness.HostSpec{{Name: "client"}, {Name: "backend"}}}
	env, err := netns.New().Build(ctx, harness.PrefixBase+"h"+hex.EncodeToString(b), topo, t.TempDir())
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return env
}

func labHost(t *testing.T, env *harness.Env, name string) harness.NetnsHost {
	t.Helper()
	return env.Host(name).(harness.NetnsHost)
}

// rootHost pretends the root namespace is a lab host, to check that writes there are refused.
type rootHost struct{}

func (rootHost) Addrs() []netip.Addr      { return nil }
func (rootHost) Name() string             { return "root" }
func (rootHost) NetnsPath() string        { return "/proc/self/ns/net" }
func (rootHost) Do(fn func() error) error { return harness.DoIn("/proc/self/ns/net", fn) }
func (rootHost) Start(context.Context, harness.ProcSpec) (*harness.Process, error) {
	panic("not used")
}

func TestDoIn(t *testing.T) {
	env := buildLab(t)
	h := labHost(t, env, "client")
	want, err := harness.NetnsIDOf(h.NetnsPath())
	if err != nil {
		t.Fatal(err)
	}
	home, err := harness.NetnsIDOf("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 { // many calls: no thread may come back to the pool still switched
		var in harness.NetnsID
		err := harness.DoIn(h.NetnsPath(), func() (err error) {
			in, err = harness.NetnsIDOf("/proc/thread-self/ns/net")
			return err
		})
		if err != nil || in != want {
			t.Fatalf("call %d: in %v (want %v): %v", i, in, want, err)
		}
		var after harness.NetnsID
		harness.OnLockedThread(func() (err error) {
			after, err = harness.NetnsIDOf("/proc/thread-self/ns/net")
			return err
		})
		if after != home {
			t.Fatalf("call %d: a fresh thread is in %v, not the home namespace %v", i, after, home)
		}
	}
	if root, err := harness.IsRootNetns(want); err != nil || root {
		t.Errorf("IsRootNetns(lab) = %v, %v", root, err)
	}
	err = harness.DoIn("/proc/self/ns/uts", func() error { return nil })
	if err == nil || !strings.Contains(err.Error(), "enter netns /proc/self/ns/uts") {
		t.Errorf("DoIn on a non-net namespace: %v", err)
	}
	err = harness.DoIn("/var/run/netns/fl-does-not-exist", func() error { return nil })
	if err == nil || !strings.Contains(err.Error(), "open netns") {
		t.Errorf("DoIn on a missing namespace: %v", err)
	}
}
