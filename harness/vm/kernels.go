package vm

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Kernel is a guest kernel a scenario may name (`kernels: [host, debian-6.1]`): Debian's linux-image-amd64 of
// Suite, whose release starts with Version.
type Kernel struct {
	Suite   string
	Version string // e.g. "6.1": the release is 6.1.<patch>-<abi>-amd64
}

// Kernels are the guests' kernels by the name a scenario gives them: the one table where a kernel name is
// mapped to the image that boots it (images/out/vm/SUITE, built by `make vm-image VM_SUITE=SUITE`).
var Kernels = map[string]Kernel{
	"debian-6.1":  {Suite: "bookworm", Version: "6.1"},
	"debian-6.12": {Suite: "trixie", Version: "6.12"},
}

// KernelNames are the names of Kernels, sorted.
func KernelNames() []string {
	names := make([]string, 0, len(Kernels))
	for n := range Kernels {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Runs reports whether release (uname -r) is the kernel k names: its version, then a dot or a dash.
func (k Kernel) Runs(release string) bool {
	rest, ok := strings.CutPrefix(release, k.Version)
	return ok && (strings.HasPrefix(rest, ".") || strings.HasPrefix(rest, "-"))
}

// OpenKernel opens the guest image of the kernel named name under the repository root (DefaultDir of its
// suite). A missing image or qemu gives an error wrapping ErrNoImage with the command that builds it; an image
// whose kernel is not the named one (a FAULTLAB_VM_DIR pointing elsewhere) is an error too.
func OpenKernel(root, name string) (*Image, error) {
	k, ok := Kernels[name]
	if !ok {
		return nil, fmt.Errorf("kernel %q: not one of the lab's guests (%s)", name, strings.Join(KernelNames(), ", "))
	}
	dir := DefaultDir(root, k.Suite)
	im, err := read(dir)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", name, err)
	}
	if !k.Runs(im.Kernel) {
		return nil, fmt.Errorf("kernel %s: the guest in %s runs kernel %s, not %s (%s's): rebuild it with "+
			"`FORCE=1 make vm-image VM_SUITE=%s`", name, filepath.Clean(dir), im.Kernel, k.Version, k.Suite, k.Suite)
	}
	if err := im.qemu(); err != nil {
		return nil, fmt.Errorf("kernel %s: %w", name, err)
	}
	return im, nil
}
