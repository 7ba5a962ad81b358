package services

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/faultlab/faultlab/harness"
)

// TestBinariesCoverRegistry keeps FindBinaries' table in step with the drivers: every kind has an entry.
func TestBinariesCoverRegistry(t *testing.T) {
	for kind := range Registry {
		if len(binaries[kind]) == 0 {
			t.Errorf("kind %s: no binaries listed for FindBinaries (binaries.go)", kind)
		}
	}
	if installDBMissing != "mariadb-install-db not found in PATH: "+mariadbGet {
		t.Errorf("mariadb-install-db's message differs from the driver's: %q", installDBMissing)
	}
}

func TestFindBinaries(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "haproxy")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExec := filepath.Join(t.TempDir(), "nginx")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, kind  string
		opts        map[string]string
		want        string // substring of the error; "" for none
		unsupported bool
	}{
		{"option", "haproxy", map[string]string{"binary": exe}, "", false},
		{"missing", "haproxy", map[string]string{"binary": "/nonexistent/haproxy"},
			`haproxy binary "/nonexistent/haproxy" does not exist: install it with ` + "`make deps`", true},
		{"not-executable", "nginx", map[string]string{"binary": notExec}, "is not an executable file", false},
		{"tengine", "tengine", map[string]string{"binary": "/nonexistent/tengine"}, "build it with `make tengine`", true},
		{"unknown-kind", "apache", nil, `unknown service kind "apache"`, false},
	}
	// mariadb runs two programs; only mariadbd follows the option.
	found, err := FindBinaries("mariadb", map[string]string{"binary": "/nonexistent/mariadbd"})
	if err != nil || len(found) != 2 || found[0].Name != "mariadbd" || !errors.Is(found[0].Err, harness.ErrUnsupported) ||
		found[1].Name != "mariadb-install-db" || found[1].Option {
		t.Errorf("FindBinaries(mariadb) = %+v, %v", found, err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			found, err := FindBinaries(tt.kind, tt.opts)
			if err == nil && len(found) != 1 {
				t.Fatalf("FindBinaries = %+v, want one binary", found)
			}
			if err == nil {
				if !found[0].Option {
					t.Errorf("%s: Option = false, want true", found[0].Name)
				}
				err = found[0].Err
			}
			if tt.want == "" {
				if err != nil || found[0].Path != exe {
					t.Fatalf("FindBinaries = %+v, %v; want %s", found, err, exe)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("FindBinaries = %v; want an error containing %q", err, tt.want)
			}
			if got := errors.Is(err, harness.ErrUnsupported); got != tt.unsupported {
				t.Errorf("errors.Is(err, ErrUnsupported) = %v, want %v", got, tt.unsupported)
			}
		})
	}
}
