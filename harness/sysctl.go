package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// removedSysctls gives the hint for sysctls a scenario may still ask for although the kernel dropped them.
var removedSysctls = map[string]string{
	"net.ipv4.tcp_tw_recycle":         "removed in Linux 4.12",
	"net.ipv4.tcp_abc":                "removed in Linux 3.9",
	"net.ipv4.tcp_cookie_size":        "removed in Linux 3.10",
	"net.ipv4.tcp_frto_response":      "removed in Linux 3.10",
	"net.ipv4.ipfrag_secret_interval": "removed in Linux 4.17",
}

// ApplySysctls writes kv (dotted names, e.g. net.ipv4.tcp_tw_reuse) inside h's network namespace in sorted
// key order, reads every value back and compares it with what was asked (whitespace normalised, so
// "1024 65000" matches the kernel's "1024\t65000"). It returns the values read back.
//
// Only net.* sysctls are accepted: everything else is global to the machine. Global net.* sysctls (e.g.
// net.ipv4.tcp_max_orphans, net.core.rmem_max) do not exist inside a non-initial namespace, so they fail as
// "global to the machine". A sysctl the kernel does not have fails with its kernel release and, for known
// removals, a hint; a value the kernel stored differently fails with wanted and got. It refuses to write
// when h is the root network namespace.
//
// /proc/sys/net resolves against the network namespace of the thread that opens the file, so the files are
// opened on h's switched thread (see TestSysctlFollowsThread).
func ApplySysctls(h NetnsHost, kv map[string]string) (map[string]string, error) {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	paths := make(map[string]string, len(kv))
	var errs []error
	for _, k := range keys {
		p, err := sysctlPath(k)
		if err != nil {
			errs = append(errs, err)
		}
		paths[k] = p
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	readback := make(map[string]string, len(kv))
	err := doInLab(h, "apply sysctls", func() error {
		for _, k := range keys {
			got, err := writeSysctl(k, paths[k], kv[k])
			if err != nil {
				return err
			}
			readback[k] = got
		}
		return nil
	})
	if err != nil {
		return readback, fmt.Errorf("host %s: %w", h.Name(), err)
	}
	return readback, nil
}

// ReadSysctls reads names inside h's network namespace; values are whitespace-normalised.
func ReadSysctls(h NetnsHost, names []string) (map[string]string, error) {
	out := make(map[string]string, len(names))
	err := h.Do(func() error {
		for _, k := range names {
			p, err := sysctlPath(k)
			if err != nil {
				return err
			}
			v, err := readSysctl(k, p)
			if err != nil {
				return err
			}
			out[k] = v
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("host %s: %w", h.Name(), err)
	}
	return out, nil
}

// sysctlPath maps a dotted name to its /proc/sys path. Names already written with slashes (as sysctl(8)
// accepts, for interface names containing dots) are taken as they are.
func sysctlPath(name string) (string, error) {
	rel := name
	if !strings.Contains(name, "/") {
		rel = strings.ReplaceAll(name, ".", "/")
	}
	parts := strings.Split(rel, "/")
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return "", fmt.Errorf("sysctl %s: malformed name", name)
		}
	}
	if parts[0] != "net" || len(parts) < 2 {
		return "", fmt.Errorf("sysctl %s: not a network sysctl: refusing (it would change the whole machine)", name)
	}
	return filepath.Join("/proc/sys", rel), nil
}

func writeSysctl(name, path, value string) (string, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return "", sysctlOpenError(name, path, err)
	}
	_, werr := f.WriteString(value)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return "", fmt.Errorf("sysctl %s: write %q: %w", name, value, err)
	}
	got, err := readSysctl(name, path)
	if err != nil {
		return "", err
	}
	if want := normalizeSysctl(value); got != want {
		return got, fmt.Errorf("sysctl %s: kernel changed the value: wanted %q, got %q", name, want, got)
	}
	return got, nil
}

func readSysctl(name, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", sysctlOpenError(name, path, err)
	}
	return normalizeSysctl(string(b)), nil
}

// sysctlOpenError explains a missing sysctl: removed from the kernel, or global (present only in the root
// namespace). It runs on the switched thread, so the root check opens the path from a fresh thread.
func sysctlOpenError(name, path string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sysctl %s: %w", name, err)
	}
	var inRoot bool
	_ = OnLockedThread(func() error {
		_, serr := os.Stat(path)
		inRoot = serr == nil
		return nil
	})
	if inRoot {
		return fmt.Errorf("sysctl %s: is global to the machine, not per network namespace: %w", name, ErrUnsupported)
	}
	msg := fmt.Sprintf("does not exist on kernel %s", kernelRelease())
	if hint, ok := removedSysctls[name]; ok {
		msg += " (" + hint + ")"
	}
	return fmt.Errorf("sysctl %s: %s: %w", name, msg, err)
}

func normalizeSysctl(v string) string { return strings.Join(strings.Fields(v), " ") }

var (
	releaseOnce sync.Once
	release     string
)

func kernelRelease() string {
	releaseOnce.Do(func() {
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			release = "unknown"
			return
		}
		release = unix.ByteSliceToString(u.Release[:])
	})
	return release
}
