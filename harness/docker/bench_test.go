package docker_test

import (
	"context"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/docker"
	"github.com/faultlab/faultlab/harness/docker/dockertest"
)

// BenchmarkSetupTeardown3Hosts builds and closes the usual three-host lab (client, haproxy, nginx images
// plus the router) and reports setup and teardown times.
func BenchmarkSetupTeardown3Hosts(b *testing.B) {
	dockertest.RequireDocker(b)
	dockertest.RequireImages(b, docker.ToolsImage, docker.HAProxyImage, docker.NginxImage)
	topo := harness.Topology{Hosts: []harness.HostSpec{{Name: "client"}, {Name: "proxy"}, {Name: "backend"}}}
	p := docker.New(docker.Options{Images: labImages})
	var setup, teardown time.Duration
	n := 0
	for b.Loop() {
		prefix := newPrefix(b)
		t0 := time.Now()
		env, err := p.Build(context.Background(), prefix, topo, b.TempDir())
		t1 := time.Now()
		if cerr := env.Close(); cerr != nil {
			b.Fatal(cerr)
		}
		if err != nil {
			b.Fatal(err)
		}
		setup += t1.Sub(t0)
		teardown += time.Since(t1)
		n++
	}
	b.ReportMetric(float64(setup.Milliseconds())/float64(n), "setup-ms/op")
	b.ReportMetric(float64(teardown.Milliseconds())/float64(n), "teardown-ms/op")
}
