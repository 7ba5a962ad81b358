package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// The lab's images, built offline by `make images` (images/build.sh): a Debian rootfs per role, tagged with
// the suite (the lab's stable tag) and with the version of the role's main package.
const (
	ToolsImage   = "faultlab/tools:bookworm"   // iproute2, nftables, iptables, tcpdump, procps, curl
	HAProxyImage = "faultlab/haproxy:bookworm" // Debian's haproxy
	NginxImage   = "faultlab/nginx:bookworm"   // Debian's nginx-light
	MariaDBImage = "faultlab/mariadb:bookworm" // Debian's mariadb-server
)

// LabImage is the lab's image of a role (haproxy, nginx, mariadb, tools, ...) for the default suite.
func LabImage(role string) string { return labRepo + role + ":bookworm" }

// labRepo is the repository prefix of the images `make images` builds; the lab never pulls those.
const labRepo = "faultlab/"

// ErrImageMissing is matched by a *MissingImageError.
var ErrImageMissing = errors.New("image not found")

// MissingImageError is an image absent from the local engine: lab images cannot be pulled (no registry
// has them), so the message says how to build them.
type MissingImageError struct {
	Image string
}

func (e *MissingImageError) Error() string {
	return fmt.Sprintf("image %s not found: build it with `%s`", e.Image, buildCommand(e.Image))
}

func (e *MissingImageError) Unwrap() error { return ErrImageMissing }

// buildCommand is the command that builds a lab image: `make images`, with SUITE= for another suite.
func buildCommand(image string) string {
	_, tag, _ := strings.Cut(strings.TrimPrefix(image, labRepo), ":")
	if tag == "" || tag == "bookworm" || strings.ContainsAny(tag, "0123456789") {
		return "make images"
	}
	return "make images SUITE=" + tag
}

// isLabImage reports whether image is one `make images` builds (never pulled: no registry has it).
func isLabImage(image string) bool { return strings.HasPrefix(image, labRepo) }

// newClient returns a Docker API client configured from the environment (DOCKER_HOST...), with API version
// negotiation (Debian's docker.io 20.10 speaks API 1.41).
func newClient() (*client.Client, error) {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return c, nil
}

// Ping reports whether a Docker engine answers (with its API version).
func Ping(ctx context.Context) (string, error) {
	c, err := newClient()
	if err != nil {
		return "", err
	}
	defer c.Close()
	p, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		return "", fmt.Errorf("ping docker engine at %s: %w", c.DaemonHost(), err)
	}
	return p.APIVersion, nil
}

// CheckImages returns a *MissingImageError (joined, one per image) for every lab image (faultlab/...)
// absent from the local engine. Other images are not checked: testcontainers pulls them when missing.
func CheckImages(ctx context.Context, images ...string) error {
	c, err := newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	return checkImages(ctx, c, images)
}

func checkImages(ctx context.Context, c *client.Client, images []string) error {
	var errs []error
	seen := map[string]bool{}
	for _, img := range images {
		if seen[img] || !isLabImage(img) {
			continue
		}
		seen[img] = true
		if _, err := c.ImageInspect(ctx, img); err != nil {
			if cerrdefs.IsNotFound(err) {
				errs = append(errs, &MissingImageError{Image: img})
				continue
			}
			errs = append(errs, fmt.Errorf("inspect image %s: %w", img, err))
		}
	}
	return errors.Join(errs...)
}

const ryukDisabledEnv = "TESTCONTAINERS_RYUK_DISABLED"

var (
	ryukMu      sync.Mutex
	ryukChecked bool
)

// disableRyukIfAbsent sets TESTCONTAINERS_RYUK_DISABLED=true when the Ryuk reaper's image is not in the
// local engine (it would be pulled, and no registry is reachable here): the lab's own label-based cleanup
// (Env.Close, Clean) removes what it creates. testcontainers reads its configuration once, at its first
// call, so this runs before any. A value already set by the user is left alone.
func disableRyukIfAbsent(ctx context.Context, c *client.Client) error {
	ryukMu.Lock()
	defer ryukMu.Unlock()
	if ryukChecked {
		return nil
	}
	if _, set := os.LookupEnv(ryukDisabledEnv); !set {
		_, err := c.ImageInspect(ctx, testcontainers.ReaperDefaultImage)
		switch {
		case cerrdefs.IsNotFound(err):
			if err := os.Setenv(ryukDisabledEnv, "true"); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("inspect image %s: %w", testcontainers.ReaperDefaultImage, err)
		}
	}
	ryukChecked = true
	return nil
}
