package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/harness/vm"
	"github.com/faultlab/faultlab/results"
)

// ShardByKernel is the unit of a run under several kernels (spec.Scenario.Kernels): each kernel's cells are
// one part, run by a runner on that kernel (the host's here, a guest's inside it) and merged by
// results.Merge like shards.
const ShardByKernel = "kernel"

// checkKernel checks Options.Kernel against the scenario: a scenario that names kernels is run one kernel at
// a time, on a machine that runs it.
func checkKernel(s *spec.Scenario, opts Options) error {
	switch {
	case len(s.Kernels) == 0 && opts.Kernel == "":
		return nil
	case len(s.Kernels) == 0:
		return fmt.Errorf("--kernel %s: scenario %s names no kernels (kernels: [...])", opts.Kernel, s.Name)
	case opts.Kernel == "":
		return fmt.Errorf("scenario %s runs its cells under kernels %s: `faultlab run` runs each kernel's part "+
			"(the guests under qemu) and merges them; a runner runs one kernel's (--kernel NAME)", s.Name,
			strings.Join(s.Kernels, ", "))
	case !slices.Contains(s.Kernels, opts.Kernel):
		return fmt.Errorf("--kernel %s: not one of the scenario's kernels (%s)", opts.Kernel,
			strings.Join(s.Kernels, ", "))
	case opts.Shard != nil:
		return errors.New("--shard cannot split a run under several kernels: it is already split, one part per kernel")
	case opts.UntilDecided:
		return errors.New("--until-decided cannot run under several kernels: the sequential design looks at " +
			"every cell after each round, in one run")
	}
	if opts.Kernel == spec.HostKernel {
		return nil
	}
	k, ok := vm.Kernels[opts.Kernel]
	if rel := harness.KernelRelease(); ok && !k.Runs(rel) {
		return fmt.Errorf("--kernel %s: this machine runs kernel %s, not %s: `faultlab run %s` boots the guest "+
			"that runs these cells", opts.Kernel, rel, k.Version, s.File)
	}
	return nil
}

// kernelCells keeps the cells that run under kernel (all of them when kernel is "").
func kernelCells(s *spec.Scenario, cells []spec.Cell, kernel string) []spec.Cell {
	if kernel == "" {
		return cells
	}
	return slices.DeleteFunc(slices.Clone(cells), func(c spec.Cell) bool { return s.CellKernel(&c) != kernel })
}

// KernelCells lists, for each of the scenario's kernels in order, the names of the cells a run with opts
// (mode, selection) would run under it; none when the scenario names no kernels. The scenario is checked
// first, as New checks it, and no cell selected is an error.
func KernelCells(s *spec.Scenario, opts Options) (map[string][]string, error) {
	if err := spec.Check(s, Vocabulary()); err != nil {
		return nil, err
	}
	if opts.Seed != 0 {
		s.Seed = opts.Seed
	}
	cells, err := selectCells(spec.Expand(s, opts.Long), opts.Cells)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, c := range cells {
		k := s.CellKernel(&c)
		if k != "" && !slices.Contains(out[k], c.Name) {
			out[k] = append(out[k], c.Name)
		}
	}
	return out, nil
}

// preflightPart is Preflight for New. In one kernel's part of a run under several kernels, a cell the kernel
// cannot run (a sysctl it lacks, a daemon its image lacks) is refused rather than the whole part: the other
// cells run, and the refusals (one line each, naming the cell, the kernel and the problem) go into run.json's
// warnings, which the merge keeps. When every cell is refused, or the part fails as a whole, the error is
// Preflight's.
func preflightPart(s *spec.Scenario, opts Options) (map[string]string, error) {
	ctx := context.Background()
	_, err := Preflight(ctx, s, opts)
	if err == nil || opts.Kernel == "" {
		return nil, err
	}
	cells, serr := selectCells(spec.Expand(s, opts.Long), opts.Cells)
	if serr != nil {
		return nil, serr
	}
	cells = kernelCells(s, cells, opts.Kernel)
	var names []string
	for _, c := range cells {
		if !slices.Contains(names, c.Name) {
			names = append(names, c.Name)
		}
	}
	refused := map[string]string{}
	for _, n := range names {
		one := opts
		one.Cells = []string{n}
		if _, cerr := Preflight(ctx, s, one); cerr != nil {
			refused[n] = fmt.Sprintf("cell %s refused on kernel %s (%s): %s", n, harness.KernelRelease(),
				opts.Kernel, strings.ReplaceAll(cerr.Error(), "\n", "; "))
		}
	}
	if len(refused) == 0 || len(refused) == len(names) {
		return nil, err
	}
	return refused, nil
}

// kernelShard keeps this kernel's cells of all, less the refused ones, and describes them as a part of the
// whole run (results.Merge merges the parts).
func kernelShard(s *spec.Scenario, opts Options, all []spec.Cell, refused map[string]string) ([]spec.Cell,
	*results.ShardMeta, error) {
	cells := slices.DeleteFunc(kernelCells(s, all, opts.Kernel), func(c spec.Cell) bool {
		_, no := refused[c.Name]
		return no
	})
	if len(cells) == 0 {
		return nil, nil, fmt.Errorf("--kernel %s: no selected cell runs under it", opts.Kernel)
	}
	opts.Shard = &Shard{Index: slices.Index(s.Kernels, opts.Kernel) + 1, Count: len(s.Kernels)}
	meta, err := shardMeta(s, opts, all, ShardByKernel)
	return cells, meta, err
}
