package spec

import (
	"fmt"
	"slices"
	"strings"
)

// The kernel axis. A scenario may name the kernels its cells run under:
//
//	kernels: [host, debian-6.1]
//
// Every cell then runs once under each kernel, named <cell>.<level> where the level is the kernel's name with
// the characters a level cannot hold made "-" (default.host, default.debian-6-1), every claim is made under
// each kernel, and the reference moves to the first kernel's: the same crossing as a --set axis (AddAxis),
// applied to the matrix as written, the file's own axes' cells included. It is a field of its own rather than
// an axis kind in axes: the file's axes multiply one another before the matrix rows written by hand, while a
// kernel is where every cell runs, the hand-written rows included, and sets no field of a cell. "host" is the
// kernel of the machine running the lab; the others are the lab's guests (Vocabulary.Kernels, harness/vm),
// checked by Check.

// KernelAxis is the name of the kernel axis in the cells' axes and the results' columns.
const KernelAxis = "kernel"

// HostKernel names the kernel of the machine running the lab.
const HostKernel = "host"

// KernelLevel is the level (and cell-name suffix) of the kernel named name: debian-6.1 -> debian-6-1.
func KernelLevel(name string) string {
	return strings.Trim(notLevel.ReplaceAllString(strings.ToLower(name), "-"), "-")
}

// CellKernel is the name of the kernel a cell runs under ("" when the scenario names no kernels).
func (s *Scenario) CellKernel(c *Cell) string {
	level, ok := c.Axes[KernelAxis]
	if !ok {
		return ""
	}
	for _, k := range s.Kernels {
		if KernelLevel(k) == level {
			return k
		}
	}
	return ""
}

// GuestKernels are the kernels of the scenario other than the host's, in the file's order.
func (s *Scenario) GuestKernels() []string {
	return slices.DeleteFunc(slices.Clone(s.Kernels), func(k string) bool { return k == HostKernel })
}

// kernelList checks the kernels' names as written (Check checks them against the lab's guests).
func (v *validator) kernelList(s *Scenario) {
	if !v.set("kernels", s.Kernels != nil) {
		return
	}
	if len(s.Kernels) == 0 {
		v.add("kernels", "empty; name at least one kernel (e.g. [host, debian-6.1]) or leave the field out")
	}
	for i, k := range s.Kernels {
		p := fmt.Sprintf("kernels[%d]", i)
		switch j := slices.IndexFunc(s.Kernels[:i], func(o string) bool { return KernelLevel(o) == KernelLevel(k) }); {
		case KernelLevel(k) == "":
			v.add(p, "%q is not a kernel name (e.g. host, debian-6.1)", k)
		case j >= 0:
			v.add(p, "duplicate kernel %q (also kernels[%d])", k, j)
		}
	}
	for i, a := range s.Axes {
		if axisTitle(a) == KernelAxis && !s.kernelsDone {
			v.add(fmt.Sprintf("axes[%d].name", i), "the axis name %q is the kernels' (kernels: ...); name this "+
				"axis otherwise", KernelAxis)
		}
	}
}

// crossKernels crosses every cell with the kernels (once: Validate after Parse does nothing), and validates
// the result again (the record budget counts every cell). It is called once the scenario as written is valid.
func (v *validator) crossKernels(s *Scenario) {
	if len(s.Kernels) == 0 || s.kernelsDone {
		return
	}
	s.kernelsDone = true
	levels := make([]level, len(s.Kernels))
	for i, k := range s.Kernels {
		levels[i] = level{name: KernelLevel(k), path: fmt.Sprintf("kernels[%d]", i), whole: true}
	}
	if !crossEvery(v, s, "kernels", Axis{Name: KernelAxis, Levels: levelRows(levels)}, KernelAxis, levels) {
		return
	}
	again := &validator{file: s.File, lines: s.rowLines()}
	again.run(s)
	v.problems = append(v.problems, again.problems...)
}

// levelRows are the rows of levels that set nothing (the kernel axis's, as recorded in Axes).
func levelRows(levels []level) []CellSpec {
	rows := make([]CellSpec, len(levels))
	for i, l := range levels {
		rows[i] = CellSpec{Name: l.name}
	}
	return rows
}

// kernels checks the kernels' names against the lab's: host and the guests it can boot.
func (c *checker) kernels() {
	known := append([]string{HostKernel}, slices.Sorted(slices.Values(c.voc.Kernels))...)
	for i, k := range c.s.Kernels {
		if !slices.Contains(known, k) {
			c.add(fmt.Sprintf("kernels[%d]", i), "unknown kernel %q; want one of %s (host: this machine's; "+
				"the others are the lab's guests, built by `make vm-image VM_SUITE=...`)", k, oneOf(known))
		}
	}
}
