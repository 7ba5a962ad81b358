//go:build cgo

package capture

import (
	"strings"
	"testing"
)

func TestCheckFilter(t *testing.T) {
	tests := []struct {
		name, expr string
		snaplen    int
		want       string // "" when it compiles
	}{
		{"reload", "tcp[tcpflags] & tcp-rst != 0 or tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", 96, ""},
		{"exhaustion", "tcp port 3306 and tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0", 0, ""},
		{"typo", "tcp porrt 80", 0, `compile filter "tcp porrt 80": `},
		{"dangling", "tcp port 3306 and", 96, `compile filter "tcp port 3306 and": `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFilter(tt.snaplen, tt.expr)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("CheckFilter(%q) = %v, want nil", tt.expr, err)
			case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
				t.Fatalf("CheckFilter(%q) = %v, want an error starting %q", tt.expr, err, tt.want)
			case err != nil:
				t.Log(err)
			}
		})
	}
}
