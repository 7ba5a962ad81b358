package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/faultlab/faultlab/harness/runner"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/harness/vm"
	"github.com/faultlab/faultlab/results"
)

// guestOptions size a guest that runs one kernel's part of a run.
var guestOptions = vm.Options{CPUs: 2, MemoryMB: 2048, Timeout: 2 * time.Hour, Output: os.Stdout}

// runKernels runs a scenario that names kernels (kernels: [host, debian-6.1]): each kernel's cells as one
// part, the host's here and each guest's in one boot of its image (guestRun, the run given --kernel NAME),
// then merges the parts' run directories into one (results.Merge) whose cells carry their kernel. Everything
// that can be checked is checked before any work: the scenario, the cells, and that every guest's image is
// built (else the command that builds it). A cell a kernel cannot run is refused in that kernel's part and
// named in the merged run's warnings; a part that fails is left out of the merge, which says so.
func runKernels(ctx context.Context, f *runFlags, file string, s *spec.Scenario, args []string) error {
	switch {
	case f.shard != "":
		return errors.New("--shard: a run under several kernels is already split, one part per kernel")
	case f.untilDecided:
		return errors.New("--until-decided cannot run under several kernels: the sequential design looks at " +
			"every cell after each round, in one run")
	case f.backend != "" && f.backend != "netns":
		return fmt.Errorf("--backend %s: the guests run the netns backend only", f.backend)
	}
	parts, err := runner.KernelCells(s, f.options())
	if err != nil {
		return err
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	images := map[string]*vm.Image{}
	var errs []error
	for _, k := range s.GuestKernels() {
		if len(parts[k]) == 0 {
			continue
		}
		im, err := vm.OpenKernel(root, k)
		if err != nil {
			errs = append(errs, err)
		}
		images[k] = im
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	var dirs []string
	for _, k := range s.Kernels {
		if len(parts[k]) == 0 {
			continue
		}
		fmt.Printf("kernel %s: %d cells\n", k, len(parts[k]))
		var dir string
		var err error
		if k == spec.HostKernel {
			dir, err = hostPart(ctx, f, s)
		} else {
			dir, err = guestPart(ctx, images[k], file, args, f.out, k)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("kernel %s: %w", k, err))
		}
		if dir != "" {
			dirs = append(dirs, dir)
		}
		if ctx.Err() != nil {
			return errors.Join(append(errs, ctx.Err())...)
		}
	}
	if len(dirs) == 0 {
		return errors.Join(append(errs, errors.New("no kernel's part ran"))...)
	}
	out := filepath.Join(f.out, s.Name, time.Now().UTC().Format("20060102T150405Z")+"-kernels")
	rep, err := results.Merge(out, dirs)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	fmt.Println()
	_ = results.Markdown(os.Stdout, rep)
	fmt.Printf("\nparts: %s\nresults: %s\n", strings.Join(dirs, ", "), filepath.Join(out, results.ResultsFile))
	if f.junit != "" {
		errs = append(errs, writeRunJUnit(f.junit, rep))
	}
	if lost := ranNowhere(s, parts, rep); len(lost) > 0 {
		errs = append(errs, fmt.Errorf("cell(s) %s ran under none of the kernels (refused by every kernel "+
			"asked: see the warnings)", strings.Join(lost, ", ")))
	}
	if err := unmetClaims(rep.Verdicts, f.acceptInconclusive, errors.Join(errs...) != nil); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// hostPart runs the host kernel's cells here and returns the part's run directory.
func hostPart(ctx context.Context, f *runFlags, s *spec.Scenario) (string, error) {
	hf := *f
	hf.kernel = spec.HostKernel
	r, err := hf.runner(s)
	if err != nil {
		return "", err
	}
	_, errs := runCells(ctx, &hf, r)
	return r.Dir, errors.Join(errs...)
}

// guestPart runs kernel's cells in one boot of its guest image (`faultlab run ARGS --kernel NAME` there) and
// returns the part's run directory, brought back under out.
func guestPart(ctx context.Context, im *vm.Image, file string, args []string, out, kernel string) (string, error) {
	dirs, res, err := guestRun(ctx, im, file, append(slices.Clone(args), "--kernel", kernel), out, guestOptions)
	if err == nil && len(dirs) != 1 {
		err = fmt.Errorf("the guest wrote %d run directories (%s), want one", len(dirs), strings.Join(dirs, ", "))
	}
	if err != nil {
		if res != nil && res.ExitCode != 0 {
			return "", &vmExit{code: res.ExitCode, kernel: im.Kernel}
		}
		return "", err
	}
	fmt.Printf("kernel %s (%s): run directory %s, boot to power-off %s\n", kernel, im.Kernel, dirs[0],
		res.Elapsed.Round(time.Second))
	if res.ExitCode != 0 {
		err = &vmExit{code: res.ExitCode, kernel: im.Kernel}
	}
	return dirs[0], err
}

// ranNowhere lists the cells of the scenario as written (before the kernel axis) that were planned under some
// kernel and ran under none: every kernel refused them, which is a mistake in the scenario (a sysctl no kernel
// of the run has), not a difference between kernels.
func ranNowhere(s *spec.Scenario, parts map[string][]string, rep *results.Report) []string {
	ran := map[string]bool{}
	var planned []string
	for _, k := range s.Kernels {
		for _, c := range parts[k] {
			base := withoutLevel(c, spec.KernelLevel(k))
			if !slices.Contains(planned, base) {
				planned = append(planned, base)
			}
			if rep.Cell(c) != nil {
				ran[base] = true
			}
		}
	}
	return slices.DeleteFunc(planned, func(c string) bool { return ran[c] })
}

// withoutLevel is a cell's name without its level on one axis (levels hold no "."; the last match is the
// axis's, a name written in the matrix coming first): default.debian-6-1 -> default.
func withoutLevel(cell, level string) string {
	parts := strings.Split(cell, ".")
	for i := len(parts) - 1; i >= 0; i-- {
		if parts[i] == level {
			if rest := slices.Delete(parts, i, i+1); len(rest) > 0 {
				return strings.Join(rest, ".")
			}
			return "default"
		}
	}
	return cell
}
