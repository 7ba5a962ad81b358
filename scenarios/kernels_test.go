package scenarios

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/harness/testutil"
	"github.com/faultlab/faultlab/harness/vm"
	"github.com/faultlab/faultlab/results"
)

// TestKernels runs exhaustion-kernels.yaml, whose cells run under each of its kernels (kernels: host and the
// lab's guests), through the one command that does it, `faultlab run`: the host's cells here, each guest's in
// one boot of its image (harness/vm), merged into one run directory whose cells carry their kernel. It checks
// that every cell ran on the kernel it names, that the guests' cells kept up with their rate (the lag guard),
// and that a cell whose sysctl a kernel lacks (tcp_tw_reuse_delay, Linux 6.13+) is refused on that kernel,
// before any work, with the sysctl and the kernel named in the merged run's warnings, while the others run.
// It reports per cell whether the kernels agree (failures on all or on none) and each claim's verdict under
// each kernel. Nightly (FAULTLAB_VM=1, make test-vm): the guests run under software emulation.
// FAULTLAB_KERNELS_OUT=FILE writes the table docs/kernels.md shows.
func TestKernels(t *testing.T) {
	testutil.RequireVM(t, "the guest kernels under emulation (~5 minutes each)")
	testutil.RequireRoot(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	const file = "scenarios/exhaustion-kernels.yaml"
	s, err := spec.Load(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range s.GuestKernels() {
		if _, err := vm.OpenKernel(root, k); err != nil {
			testutil.SkipMissing(t, err)
		}
	}
	bin := filepath.Join(t.TempDir(), "faultlab")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/faultlab").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := filepath.Abs(os.Getenv("FAULTLAB_RUNS")) // where the run directories stay
	if os.Getenv("FAULTLAB_RUNS") == "" || err != nil {
		out = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, "run", "-q", "--accept-inconclusive", "--out", out, file)
	cmd.Dir = root // the guests' images are under the repository's images/out/vm
	b, err := cmd.CombinedOutput()
	elapsed := time.Since(start)
	t.Logf("faultlab run %s:\n%s", file, lastLines(string(b), 60))
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 && strings.Contains(string(b), "results: ") {
		err = nil // the merged run was written and a claim failed: compared below
	}
	if err != nil {
		t.Fatalf("faultlab run: %v", err)
	}
	merged := "" // the merged run's results.json, as the run prints it last
	var parts []string
	for _, line := range strings.Split(string(b), "\n") {
		if r, ok := strings.CutPrefix(line, "results: "); ok {
			merged = r
		}
		if strings.HasPrefix(line, "kernel ") {
			parts = append(parts, line)
		}
	}
	t.Logf("faultlab run %s: %s in all\n%s", file, elapsed.Round(time.Second), strings.Join(parts, "\n"))
	if !strings.HasPrefix(merged, out) || !strings.HasSuffix(filepath.Dir(merged), "-kernels") {
		t.Fatalf("the merged run's results %q are not a -kernels directory under %s", merged, out)
	}
	rep, err := results.ReadReport(merged)
	if err != nil {
		t.Fatal(err)
	}
	table, release := kernelTable(t, s, rep)
	t.Logf("kernels %v:\n%s", release, table)
	if f := os.Getenv("FAULTLAB_KERNELS_OUT"); f != "" {
		if err := os.WriteFile(f, []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// delayCell sets net.ipv4.tcp_tw_reuse_delay, which kernels before 6.13 lack.
const delayCell = "tw-reuse-delay"

// kernelTable checks the merged report rep of s and returns the Markdown comparison (per cell, the failures
// under each kernel and whether they agree; per claim, its verdict under each kernel) and each kernel's
// release.
func kernelTable(t *testing.T, s *spec.Scenario, rep *results.Report) (string, map[string]string) {
	t.Helper()
	var bases []string
	byKernel := map[string]map[string]*results.CellReport{} // kernel -> base cell -> cell
	release := map[string]string{}
	for i := range rep.Cells {
		c := &rep.Cells[i]
		k := kernelNamed(s, c.Axes[spec.KernelAxis])
		base := strings.TrimSuffix(c.Name, "."+spec.KernelLevel(k))
		if k == "" || base == c.Name {
			t.Fatalf("cell %s: axes %v name none of the kernels %v", c.Name, c.Axes, s.Kernels)
		}
		if !slices.Contains(bases, base) {
			bases = append(bases, base)
		}
		if byKernel[k] == nil {
			byKernel[k] = map[string]*results.CellReport{}
		}
		byKernel[k][base] = c
		switch r, seen := release[k]; {
		case c.Kernel == "":
			t.Errorf("cell %s: the merged report gives no kernel", c.Name)
		case seen && r != c.Kernel:
			t.Errorf("cell %s ran on kernel %s, other cells of %s on %s", c.Name, c.Kernel, k, r)
		}
		release[k] = c.Kernel
		if c.Stats == nil || c.Stats.Attempts == 0 {
			t.Errorf("cell %s made no attempts: it did not run (its error is in the run's output)", c.Name)
		}
		if b := c.Behind(); b != "" {
			t.Errorf("cell %s: %s", c.Name, b)
		}
	}
	for _, k := range s.Kernels {
		if release[k] == "" {
			t.Fatalf("no cell ran under kernel %s", k)
		}
		for _, other := range s.Kernels {
			if other != k && release[other] == release[k] {
				t.Errorf("kernels %s and %s both ran on %s: a guest did not run its own kernel", k, other, release[k])
			}
		}
	}
	// A kernel without tcp_tw_reuse_delay refuses that cell before it runs, saying so in the merged run.
	refused := map[string]string{}
	for _, k := range s.Kernels {
		if byKernel[k][delayCell] != nil {
			continue
		}
		cell := delayCell + "." + spec.KernelLevel(k)
		i := slices.IndexFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "cell "+cell+" refused") })
		if i < 0 {
			t.Errorf("cell %s did not run and the merged run does not say it was refused (warnings %q)", cell,
				rep.Warnings)
			continue
		}
		w := rep.Warnings[i]
		if !strings.Contains(w, "net.ipv4.tcp_tw_reuse_delay") || !strings.Contains(w, "does not exist on kernel "+release[k]) {
			t.Errorf("refusal of %s does not name the sysctl and kernel %s: %s", cell, release[k], w)
		}
		refused[k] = w
	}

	var b strings.Builder
	b.WriteString("| cell |")
	for _, k := range s.Kernels {
		fmt.Fprintf(&b, " %s failed / attempts |", release[k])
	}
	b.WriteString(" agree |\n|---|" + strings.Repeat("---|", len(s.Kernels)) + "---|\n")
	for _, base := range bases {
		fmt.Fprintf(&b, "| %s |", base)
		var failing, ran []bool
		for _, k := range s.Kernels {
			c := byKernel[k][base]
			switch {
			case c != nil && c.Stats != nil:
				fmt.Fprintf(&b, " %d / %d |", c.Stats.Failures, c.Stats.Attempts)
				failing, ran = append(failing, c.Stats.Failures > 0), append(ran, true)
			case refused[k] != "" && base == delayCell:
				b.WriteString(" refused: the kernel has no such sysctl |")
			default:
				b.WriteString(" not run |")
			}
		}
		agree := "-"
		if len(ran) > 1 {
			agree = "yes"
			if slices.Contains(failing, true) && slices.Contains(failing, false) {
				agree = "**no**"
			}
		}
		fmt.Fprintf(&b, " %s |\n", agree)
	}
	b.WriteString("\n| claim |")
	for _, k := range s.Kernels {
		fmt.Fprintf(&b, " %s |", release[k])
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(s.Kernels)) + "\n")
	verdict := map[string]results.Status{}
	var claims []string
	for _, v := range rep.Verdicts {
		k := ""
		for _, kk := range s.Kernels {
			if strings.HasSuffix(v.Cell, "."+spec.KernelLevel(kk)) {
				k = kk
			}
		}
		key := strings.ReplaceAll(v.Claim, "."+spec.KernelLevel(k), "")
		if !slices.Contains(claims, key) {
			claims = append(claims, key)
		}
		verdict[key+"\x00"+k] = v.Status
	}
	for _, c := range claims {
		fmt.Fprintf(&b, "| %s |", c)
		for _, k := range s.Kernels {
			st := verdict[c+"\x00"+k]
			if st == "" {
				st = "-"
			}
			fmt.Fprintf(&b, " %s |", st)
		}
		b.WriteString("\n")
	}
	return b.String(), release
}

// kernelNamed is the scenario's kernel whose level is level ("" for none).
func kernelNamed(s *spec.Scenario, level string) string {
	for _, k := range s.Kernels {
		if spec.KernelLevel(k) == level {
			return k
		}
	}
	return ""
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
