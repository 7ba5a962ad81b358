package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/faultlab/faultlab/harness"
)

// Run is one lab run's namespaces, found by their names.
type Run struct {
	// Prefix is the run prefix (fl-<id>).
	Prefix string
	// Namespaces are the run's namespace names, sorted (<prefix>-router, <prefix>-<host>...).
	Namespaces []string
	// Live is true while a lab process holds the run's lock (its lock file in LockDir, or its router
	// namespace); Clean leaves live runs alone.
	Live bool
}

// Report says what Clean removed.
type Report struct {
	Namespaces []string // namespace names removed
	Processes  []int    // PIDs killed inside them
	Skipped    []string // prefixes of live runs left alone
	Locks      []string // prefixes whose stale lock file (in LockDir) was removed
}

// CleanOptions narrows Clean.
type CleanOptions struct {
	// Prefix limits the sweep to one run (fl-<id>); empty means every run.
	Prefix string
}

// List returns the lab namespaces present in /var/run/netns (names starting with fl-), grouped by run.
func List() ([]Run, error) {
	names, err := labNamespaces()
	if err != nil {
		return nil, err
	}
	runs := groupRuns(names)
	for i := range runs {
		runs[i].Live = runLive(runs[i].Prefix)
	}
	return runs, nil
}

// Clean removes what crashed runs left: every namespace in /var/run/netns named fl-*, after SIGKILLing the
// processes inside it (matched by namespace inode) and waiting until they are gone. Runs whose router
// namespace is still locked by a living lab process are skipped and reported. Nothing else is touched;
// running it twice is harmless.
func Clean(ctx context.Context) (Report, error) { return CleanWith(ctx, CleanOptions{}) }

// CleanWith is Clean limited by opts.
func CleanWith(ctx context.Context, opts CleanOptions) (Report, error) {
	var rep Report
	names, err := labNamespaces()
	if err != nil {
		return rep, err
	}
	var errs []error
	for _, run := range groupRuns(names) {
		if opts.Prefix != "" && run.Prefix != opts.Prefix {
			continue
		}
		unlock, live := takeRun(run.Prefix)
		if live {
			rep.Skipped = append(rep.Skipped, run.Prefix)
			continue
		}
		errs = append(errs, cleanRun(ctx, run, &rep))
		unlock()
	}
	// Lock files of runs killed before their first namespace or after their last, and of the runs just
	// cleaned.
	locks, err := sweepLocks(opts.Prefix)
	rep.Locks = locks
	errs = append(errs, err)
	sort.Ints(rep.Processes)
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("clean: %w", err)
	}
	return rep, nil
}

func cleanRun(ctx context.Context, run Run, rep *Report) error {
	ids := map[harness.NetnsID]bool{}
	for _, n := range run.Namespaces {
		// A file whose mount is already gone has a tmpfs inode no process can match: harmless.
		if id, err := harness.NetnsIDOf(filepath.Join(NetnsDir, n)); err == nil {
			ids[id] = true
		}
	}
	kctx, cancel := context.WithTimeout(ctx, killTimeout)
	killed, err := killNetnsProcs(kctx, ids)
	cancel()
	rep.Processes = append(rep.Processes, killed...)
	if err != nil {
		return fmt.Errorf("run %s: %w", run.Prefix, err)
	}
	var errs []error
	for _, n := range run.Namespaces {
		if err := removeNamespaceFile(filepath.Join(NetnsDir, n)); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Namespaces = append(rep.Namespaces, n)
	}
	return errors.Join(errs...)
}

// labNamespaces lists the fl-* names in NetnsDir, sorted.
func labNamespaces() ([]string, error) {
	ents, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", NetnsDir, err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), harness.PrefixBase) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// groupRuns groups namespace names by run prefix. A run is known by its <prefix>-router namespace; other
// names go to the longest such prefix they extend, and orphans (whose router is gone) to fl-<first word>.
func groupRuns(names []string) []Run {
	byPrefix := map[string]*Run{}
	var prefixes []string
	for _, n := range names {
		if p, ok := strings.CutSuffix(n, "-"+RouterName); ok && len(p) > len(harness.PrefixBase) {
			byPrefix[p] = &Run{Prefix: p}
			prefixes = append(prefixes, p)
		}
	}
	// Longest first, so fl-a-b-x goes to fl-a-b rather than fl-a when both runs exist.
	sort.Slice(prefixes, func(i, j int) bool { return len(prefixes[i]) > len(prefixes[j]) })
	for _, n := range names {
		p := orphanPrefix(n)
		for _, rp := range prefixes {
			if strings.HasPrefix(n, rp+"-") {
				p = rp
				break
			}
		}
		r, ok := byPrefix[p]
		if !ok {
			r = &Run{Prefix: p}
			byPrefix[p] = r
		}
		r.Namespaces = append(r.Namespaces, n)
	}
	runs := make([]Run, 0, len(byPrefix))
	for _, r := range byPrefix {
		sort.Strings(r.Namespaces)
		runs = append(runs, *r)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].Prefix < runs[j].Prefix })
	return runs
}

// orphanPrefix guesses the run prefix of a name with no router: fl- and the next word.
func orphanPrefix(name string) string {
	rest := name[len(harness.PrefixBase):]
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		return harness.PrefixBase + rest[:i]
	}
	return name
}
