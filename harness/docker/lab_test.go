package docker_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/docker"
	"github.com/faultlab/faultlab/harness/docker/dockertest"
	"github.com/faultlab/faultlab/harness/services"
	"github.com/moby/moby/client"
)

// labImages are the images of the usual three-host lab.
var labImages = map[string]string{"proxy": docker.HAProxyImage, "backend": docker.NginxImage}

// newPrefix is a fresh run prefix.
func newPrefix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return harness.PrefixBase + "t" + hex.EncodeToString(b)
}

// buildLab builds a docker lab; t.Cleanup closes it.
func buildLab(t testing.TB, prefix string, images map[string]string, topo harness.Topology) *harness.Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env, err := docker.New(docker.Options{Images: images}).Build(ctx, prefix, topo, t.TempDir())
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("build lab: %v", err)
	}
	return env
}

func at(h harness.Host, port uint16) netip.AddrPort { return netip.AddrPortFrom(h.Addrs()[0], port) }

// httpGet sends "GET / HTTP/1.0" to addr from inside h, from local address src (any when invalid), and
// returns the status.
func httpGet(h harness.NetnsHost, src netip.Addr, addr netip.AddrPort) (int, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	var c net.Conn
	if err := h.Do(func() (err error) { c, err = d.Dial("tcp", addr.String()); return err }); err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// labLeftovers lists the containers and networks still labelled with prefix.
func labLeftovers(t testing.TB, prefix string) []string {
	t.Helper()
	c, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	f := client.Filters{}.Add("label", docker.LabelRun+"="+prefix)
	ctrs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	nets, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range ctrs.Items {
		out = append(out, "container "+strings.Join(x.Names, ","))
	}
	for _, n := range nets.Items {
		out = append(out, "network "+n.Name)
	}
	return out
}

// sameNamespace reports whether pid is in the same namespace of kind (net, mnt...) as ref.
func sameNamespace(t testing.TB, kind string, pid, ref int) bool {
	t.Helper()
	a, err1 := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
	b, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", ref, kind))
	if err1 != nil || err2 != nil {
		t.Fatalf("read %s namespaces of %d and %d: %v, %v", kind, pid, ref, err1, err2)
	}
	return a == b
}

// TestLab builds client (tools image), proxy (haproxy image) and backend (nginx image), runs nginx and
// haproxy through the services drivers, requests through the proxy from the client's namespace, reloads
// haproxy (legacy and master-worker), and checks that closing leaves nothing labelled.
func TestLab(t *testing.T) {
	dockertest.RequireDocker(t)
	dockertest.RequireImages(t, docker.ToolsImage, docker.HAProxyImage, docker.NginxImage)
	prefix := newPrefix(t)
	topo := harness.Topology{Hosts: []harness.HostSpec{{Name: "client", NumAddrs: 2}, {Name: "proxy",
		Sysctls: map[string]string{"net.ipv4.ip_local_port_range": "20000 29999"}}, {Name: "backend"}}}
	start := time.Now()
	env := buildLab(t, prefix, labImages, topo)
	t.Logf("3 hosts up in %s", time.Since(start).Round(time.Millisecond))
	client := env.Host("client").(*docker.Host)
	proxy := env.Host("proxy").(*docker.Host)
	backend := env.Host("backend").(*docker.Host)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("images", func(t *testing.T) {
		out, err := proxy.Run(ctx, "haproxy", "-v")
		if err != nil || !strings.Contains(out, "HAProxy version") {
			t.Errorf("haproxy -v in proxy: %q, %v", out, err)
		}
		if _, err := client.Run(ctx, "haproxy", "-v"); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("haproxy in the tools image: error %v, want not found", err)
		}
		if out, err := backend.Run(ctx, "cat", "/etc/hostname"); err != nil || strings.TrimSpace(out) != "backend" {
			t.Errorf("hostname of backend: %q, %v", out, err)
		}
		// The services drivers take their binaries from the image, not from the lab's machine (which has
		// nginx): the tools image has none, so the driver must say so.
		_, err = services.NewNginx(client, filepath.Join(env.Dir, "nginx-on-tools"), at(client, 80), nil)
		if err == nil || !strings.Contains(err.Error(), "not found in the PATH of image "+docker.ToolsImage) {
			t.Errorf("nginx on the tools image: error %v, want not found in the image", err)
		}
	})
	t.Run("sysctls", func(t *testing.T) {
		got, err := harness.ReadSysctls(proxy, []string{"net.ipv4.ip_local_port_range", "net.ipv4.ip_forward"})
		if err != nil || got["net.ipv4.ip_local_port_range"] != "20000 29999" {
			t.Errorf("proxy sysctls %v, %v", got, err)
		}
		got, err = harness.ReadSysctls(env.Router, []string{"net.ipv4.ip_forward"})
		if err != nil || got["net.ipv4.ip_forward"] != "1" {
			t.Errorf("router ip_forward %v, %v", got, err)
		}
	})

	n, err := services.NewNginx(backend, filepath.Join(env.Dir, "nginx"), at(backend, 80), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !sameNamespace(t, "mnt", n.PID(), backend.PID()) || !sameNamespace(t, "net", n.PID(), backend.PID()) {
		t.Errorf("nginx (pid %d) is not in the backend container's namespaces", n.PID())
	}
	for _, strategy := range []string{services.StrategyLegacy, services.StrategyMasterWorker} {
		t.Run("haproxy-"+strategy, func(t *testing.T) {
			testHAProxy(t, ctx, env, strategy)
		})
	}

	if err := env.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if left := labLeftovers(t, prefix); len(left) > 0 {
		t.Errorf("left after close: %v", left)
	}
}

// testHAProxy starts haproxy in the proxy container, checks requests through it (from both of the
// client's addresses), reloads it three times and checks again.
func testHAProxy(t *testing.T, ctx context.Context, env *harness.Env, strategy string) {
	client := env.Host("client").(*docker.Host)
	proxy := env.Host("proxy").(*docker.Host)
	backend := env.Host("backend")
	x, err := services.NewHAProxy(proxy, filepath.Join(env.Dir, "haproxy-"+strategy), services.HAProxyConfig{
		Bind: at(proxy, 8000), Servers: []netip.AddrPort{at(backend, 80)}, Strategy: strategy,
		Options: map[string]string{"nbthread": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := x.Stop(context.Background()); err != nil {
			t.Errorf("stop haproxy: %v", err)
		}
	}()
	if err := x.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if want := imageVersion(t, docker.HAProxyImage); x.Version() != want {
		t.Errorf("haproxy version %q, the image holds %q", x.Version(), want)
	}
	for _, pid := range x.PIDs() {
		if !sameNamespace(t, "mnt", pid, proxy.PID()) {
			t.Errorf("haproxy pid %d is not in the proxy container's mount namespace", pid)
		}
	}
	get := func(when string) {
		t.Helper()
		for _, src := range client.Addrs() {
			if code, err := httpGet(client, src, at(proxy, 8000)); err != nil || code != 200 {
				t.Fatalf("%s: GET via haproxy from %s: %d, %v", when, src, code, err)
			}
		}
	}
	get("after start")
	for i := range 3 {
		res, err := x.Reload(ctx)
		if err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if len(res.NewPIDs) == 0 {
			t.Fatalf("reload %d: no new process", i)
		}
		get(fmt.Sprintf("after reload %d", i))
	}
	// The old processes exit once told to (-sf <host PIDs> from inside the container, or the master's
	// own signal): one process, or worker, remains.
	deadline := time.Now().Add(5 * time.Second)
	for x.Procs() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := x.Procs(); n != 1 {
		t.Errorf("%d haproxy processes 5 s after the last reload, want 1", n)
	}
}

// imageVersion is the package version an image of the lab was built from (its faultlab.version label).
func imageVersion(t *testing.T, image string) string {
	t.Helper()
	out, err := exec.Command("docker", "image", "inspect", "-f", `{{index .Config.Labels "faultlab.version"}}`,
		image).Output()
	if err != nil {
		t.Fatalf("inspect %s: %v", image, err)
	}
	return strings.TrimSpace(string(out))
}
