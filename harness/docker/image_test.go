package docker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/docker"
	"github.com/faultlab/faultlab/harness/docker/dockertest"
)

func TestMissingImageError(t *testing.T) {
	tests := []struct{ image, want string }{
		{docker.HAProxyImage, "image faultlab/haproxy:bookworm not found: build it with `make images`"},
		{"faultlab/haproxy:trixie", "image faultlab/haproxy:trixie not found: build it with `make images SUITE=trixie`"},
		{"faultlab/nginx:1.22.1-9-deb12u11", "image faultlab/nginx:1.22.1-9-deb12u11 not found: build it with `make images`"},
	}
	for _, tt := range tests {
		err := error(&docker.MissingImageError{Image: tt.image})
		if err.Error() != tt.want || !errors.Is(err, docker.ErrImageMissing) {
			t.Errorf("%s: %q, want %q matching ErrImageMissing", tt.image, err, tt.want)
		}
	}
}

// TestBuildMissingImage needs an engine but no image: Build fails before creating anything, naming the
// image and the command that builds it.
func TestBuildMissingImage(t *testing.T) {
	dockertest.RequireDocker(t)
	prefix := newPrefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := docker.New(docker.Options{Images: map[string]string{"proxy": "faultlab/nonexistent:bookworm"}})
	env, err := p.Build(ctx, prefix, harness.Topology{Hosts: []harness.HostSpec{{Name: "proxy"}}}, t.TempDir())
	want := "image faultlab/nonexistent:bookworm not found: build it with `make images`"
	if err == nil || !errors.Is(err, docker.ErrImageMissing) || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one containing %q", err, want)
	}
	if err := env.Close(); err != nil {
		t.Error(err)
	}
	if left := labLeftovers(t, prefix); len(left) > 0 {
		t.Errorf("left after a failed build: %v", left)
	}
}

func TestBuildValidation(t *testing.T) {
	p := docker.New(docker.Options{})
	_, err := p.Build(context.Background(), "x", harness.Topology{Hosts: []harness.HostSpec{{Name: "router"}}}, "")
	if err == nil || !strings.Contains(err.Error(), "prefix") || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("error %v, want prefix and reserved-name errors", err)
	}
	if p.Name() != "docker" || p.ImageOf("x") != docker.ToolsImage {
		t.Errorf("name %q, default image %q", p.Name(), p.ImageOf("x"))
	}
}
