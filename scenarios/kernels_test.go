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

	"github.com/faultlab/faultlab/harness/testutil"
	"github.com/faultlab/faultlab/harness/vm"
	"github.com/faultlab/faultlab/results"
)

// guestSuite is the Debian suite whose kernel the comparison runs (its linux-image-amd64: 6.1 for bookworm).
const guestSuite = "bookworm"

// TestKernels runs exhaustion-kernels.yaml on this machine's kernel and on Debian's kernel in the lab's guest
// (`faultlab vm run`, harness/vm), and reports per cell whether the two kernels agree: failures or none, and
// each claim's verdict. A cell whose sysctl the guest's kernel lacks runs only here; the guest's refusal of
// it, before any work, is checked to name the sysctl and the kernel. Nightly (FAULTLAB_VM=1, make
// test-vm): the guest runs under software emulation, about 10 minutes. FAULTLAB_KERNELS_OUT=FILE writes
// the table docs/kernels.md shows.
func TestKernels(t *testing.T) {
	if os.Getenv("FAULTLAB_VM") != "1" {
		t.Skip("nightly: FAULTLAB_VM=1 (make test-vm) boots a guest kernel under emulation (~10 minutes)")
	}
	testutil.RequireRoot(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	im, err := vm.Open(vm.DefaultDir(root, guestSuite))
	if err != nil {
		testutil.SkipMissing(t, err)
	}
	const file = "exhaustion-kernels.yaml"
	host := runScenario(t, file, "netns")
	if host == nil {
		return
	}
	bin := filepath.Join(t.TempDir(), "faultlab")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/faultlab").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := t.TempDir()
	vmRun := func(cells ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "vm", "--vm-dir", im.Dir, "run", "-q", "--accept-inconclusive",
			"--cells", strings.Join(cells, ","), "--out", out, file)
		b, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 && strings.Contains(string(b), "vm: guest ") {
			err = nil // the run came back and a claim failed: compared below
		}
		return string(b), err
	}
	// tcp_tw_reuse_delay came after 6.1: a kernel without it must refuse the cell before any work, naming the
	// sysctl and the kernel. Whether the guest's kernel has it is what the guest answers.
	var guestCells, lacking []string
	for _, c := range host.Cells {
		if c.Name != delayCell {
			guestCells = append(guestCells, c.Name)
		}
	}
	msg, err := vmRun(delayCell)
	switch {
	case err == nil:
		guestCells = append(guestCells, delayCell)
		t.Logf("cell %s ran in the guest (kernel %s)", delayCell, im.Kernel)
	case strings.Contains(msg, "net.ipv4.tcp_tw_reuse_delay") && strings.Contains(msg, im.Kernel):
		lacking = append(lacking, delayCell)
		t.Logf("cell %s in the guest is refused before it runs:\n%s", delayCell, lastLines(msg, 3))
	default:
		t.Errorf("cell %s in the guest: %v, and no refusal naming net.ipv4.tcp_tw_reuse_delay and kernel %s:\n%s",
			delayCell, err, im.Kernel, msg)
	}
	cells := slices.DeleteFunc(slices.Clone(guestCells), func(c string) bool { return c == delayCell })
	msg, err = vmRun(cells...)
	t.Logf("guest run (kernel %s):\n%s", im.Kernel, lastLines(msg, 40))
	if err != nil {
		t.Fatalf("faultlab vm run: %v", err)
	}
	// The guest's runs: the main one (its claims) and the delay cell's when the kernel has the sysctl.
	files, _ := filepath.Glob(filepath.Join(out, "exhaustion-kernels", "*", results.ResultsFile))
	guest := &results.Report{}
	for _, f := range files {
		r, err := results.ReadRunReport(f)
		if err != nil {
			t.Fatal(err)
		}
		if r.Cell(delayCell) == nil || len(r.Cells) > 1 {
			guest.Env, guest.Verdicts = r.Env, r.Verdicts
		}
		guest.Cells = append(guest.Cells, r.Cells...)
	}
	if len(guest.Cells) != len(guestCells) {
		t.Fatalf("the guest's run directories under %s hold %d cells, want %d (%v)", out, len(guest.Cells),
			len(guestCells), guestCells)
	}
	hk, gk := fmt.Sprint(host.Env["kernel"]), fmt.Sprint(guest.Env["kernel"])
	if hk == gk {
		t.Fatalf("both runs on kernel %s: the guest did not run its own kernel", hk)
	}
	for _, c := range guest.Cells {
		if c.Stats == nil || c.Stats.Attempts == 0 {
			t.Errorf("guest cell %s made no attempts: the cell did not run (its error is in the guest's output)", c.Name)
		}
		if s := c.Behind(); s != "" {
			t.Errorf("guest cell %s: %s", c.Name, s)
		}
	}
	table := kernelTable(host, guest, hk, gk, lacking)
	t.Logf("kernel %s vs %s:\n%s", hk, gk, table)
	if f := os.Getenv("FAULTLAB_KERNELS_OUT"); f != "" {
		if err := os.WriteFile(f, []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// delayCell sets net.ipv4.tcp_tw_reuse_delay, which older kernels lack.
const delayCell = "tw-reuse-delay"

// kernelTable is the Markdown comparison: per cell, the failures on each kernel, whether they agree (failures
// on both or on neither) and the claims' verdicts.
func kernelTable(host, guest *results.Report, hk, gk string, lacking []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| cell | %s failed / attempts | %s failed / attempts | agree |\n|---|---|---|---|\n",
		hk, gk)
	counts := func(c *results.CellReport) (failed, attempts int) {
		if c.Stats == nil {
			return 0, 0
		}
		return c.Stats.Failures, c.Stats.Attempts
	}
	for i := range host.Cells {
		hc := &host.Cells[i]
		gc := guest.Cell(hc.Name)
		hfail, hn := counts(hc)
		hf := fmt.Sprintf("%d / %d", hfail, hn)
		if gc == nil {
			why := "not run"
			if slices.Contains(lacking, hc.Name) {
				why = "refused: the kernel has no such sysctl"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | - |\n", hc.Name, hf, why)
			continue
		}
		gfail, gn := counts(gc)
		agree := "yes"
		if (hfail > 0) != (gfail > 0) {
			agree = "**no**"
		}
		fmt.Fprintf(&b, "| %s | %s | %d / %d | %s |\n", hc.Name, hf, gfail, gn, agree)
	}
	b.WriteString("\n| claim | " + hk + " | " + gk + " |\n|---|---|---|\n")
	gv := map[string]results.Status{}
	for _, v := range guest.Verdicts {
		gv[v.Cell+": "+v.Claim] = v.Status
	}
	for _, v := range host.Verdicts {
		fmt.Fprintf(&b, "| %s: %s | %s | %s |\n", v.Cell, v.Claim, v.Status, gv[v.Cell+": "+v.Claim])
	}
	return b.String()
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
