package services

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MaxFileSize bounds one file of nginx's files option (and a size the lab parses with ParseSize).
const MaxFileSize = 1 << 30

// servedFile is one file of the files option: its name as the scenario gave it and its size.
type servedFile struct {
	Name string
	Size int64
}

// ParseSize parses a size in bytes with an optional k or m suffix (KiB, MiB, case-insensitive): "16k" is
// 16,384 bytes, "1m" 1,048,576, "700" 700. It accepts 1 byte to MaxFileSize.
func ParseSize(s string) (int64, error) {
	num, unit := s, int64(1)
	switch {
	case strings.HasSuffix(strings.ToLower(s), "k"):
		num, unit = s[:len(s)-1], 1<<10
	case strings.HasSuffix(strings.ToLower(s), "m"):
		num, unit = s[:len(s)-1], 1<<20
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > MaxFileSize/unit || strings.HasPrefix(num, "+") {
		return 0, fmt.Errorf("size %q: want a number of bytes from 1 to %d, with an optional k or m suffix "+
			"(e.g. 700, 16k, 4m)", s, MaxFileSize)
	}
	return n * unit, nil
}

// filesOption parses the files option: comma-separated sizes, each named once.
func filesOption(opts map[string]string) ([]servedFile, error) {
	v, ok := opts["files"]
	if !ok {
		return nil, nil
	}
	var out []servedFile
	seen := map[string]bool{}
	for _, f := range strings.Split(v, ",") {
		name := strings.TrimSpace(f)
		size, err := ParseSize(name)
		if err != nil {
			return nil, fmt.Errorf("option files %q: %w", v, err)
		}
		if seen[name] {
			return nil, fmt.Errorf("option files %q: %s is listed twice", v, name)
		}
		seen[name] = true
		out = append(out, servedFile{Name: name, Size: size})
	}
	return out, nil
}

// writeFiles writes each file into dir, named as given.
func writeFiles(dir string, files []servedFile) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create files directory: %w", err)
	}
	for _, f := range files {
		if err := writeBody(filepath.Join(dir, f.Name), int(f.Size)); err != nil {
			return err
		}
	}
	return nil
}
