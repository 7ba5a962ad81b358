package vm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKernelRuns(t *testing.T) {
	cases := []struct {
		kernel, release string
		want            bool
	}{
		{"debian-6.1", "6.1.0-57-amd64", true},
		{"debian-6.1", "6.12.57+deb13-amd64", false},
		{"debian-6.1", "6.18.44", false},
		{"debian-6.12", "6.12.57+deb13-amd64", true},
		{"debian-6.12", "6.1.0-57-amd64", false},
		{"debian-6.12", "6.120.1", false},
	}
	for _, c := range cases {
		if got := Kernels[c.kernel].Runs(c.release); got != c.want {
			t.Errorf("%s runs %s: %v, want %v", c.kernel, c.release, got, c.want)
		}
	}
}

// TestOpenKernelMissing: a kernel whose guest is not built fails with the command that builds it.
func TestOpenKernelMissing(t *testing.T) {
	t.Setenv("FAULTLAB_VM_DIR", "")
	root := t.TempDir()
	_, err := OpenKernel(root, "debian-6.12")
	if !errors.Is(err, ErrNoImage) {
		t.Fatalf("error %v, want ErrNoImage", err)
	}
	for _, want := range []string{"kernel debian-6.12", filepath.Join(root, "images", "out", "vm", "trixie"),
		"`make vm-image VM_SUITE=trixie`"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := OpenKernel(root, "debian-7"); err == nil || !strings.Contains(err.Error(), "debian-6.1, debian-6.12") {
		t.Errorf("unknown kernel: error %v, want the lab's guests listed", err)
	}
}

// TestOpenKernelWrongImage: an image whose kernel is not the one named is refused (e.g. FAULTLAB_VM_DIR
// pointing at another suite's guest).
func TestOpenKernelWrongImage(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("FAULTLAB_VM_DIR", dir)
	for _, f := range []string{"vmlinuz", "initrd.img", "root.img"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kt := "6.1.0-57-amd64\nlinux-image-6.1.0-57-amd64 6.1.192-3\nbookworm\n"
	if err := os.WriteFile(filepath.Join(dir, "kernel.txt"), []byte(kt), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OpenKernel(t.TempDir(), "debian-6.12")
	if err == nil || !strings.Contains(err.Error(), "runs kernel 6.1.0-57-amd64, not 6.12") {
		t.Fatalf("error %v, want the image's kernel named", err)
	}
}
