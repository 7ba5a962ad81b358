package spec

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestReloadWindows: a syn-drop or syn-hold window must fit in the shortest gap between a cell's reloads
// (interval - jitter); a row's reload_interval is checked and changes the gap.
func TestReloadWindows(t *testing.T) {
	tests := []struct {
		name  string
		tail  string
		edits []string
		want  []string
	}{
		{name: "fits", edits: []string{"  jitter: 0s", "  jitter: 50ms\n  syn_drop: {before: 150ms, after: 50ms}"},
			tail: "matrix:\n  - {name: drop, mitigations: [syn-drop]}\n  - {name: hold, mitigations: [syn-hold]}\n"},
		{name: "drop_too_long", edits: []string{"  jitter: 0s", "  jitter: 50ms\n  syn_drop: {before: 150ms, after: 60ms}"},
			tail: "matrix:\n  - {name: drop, mitigations: [tcp_migrate_req, syn-drop]}\n",
			want: []string{`t.yaml:29: matrix[0].mitigations[1]: syn-drop's window (reload.syn_drop before 150ms + after 60ms = 210ms) is longer than the shortest gap between this cell's reloads (reload.interval 250ms - jitter 50ms = 200ms): it would cover the next reload's window too; shorten reload.syn_drop or give the row a longer reload_interval`}},
		{name: "hold_default_too_long", edits: []string{"  interval: 250ms", "  interval: 100ms"},
			tail: "matrix:\n  - {name: hold, mitigations: [syn-hold]}\n",
			want: []string{`t.yaml:28: matrix[0].mitigations[0]: syn-hold's window (reload.syn_hold before 20ms + after 100ms = 120ms) is longer than the shortest gap between this cell's reloads (reload.interval 100ms - jitter 0s = 100ms): it would cover the next reload's window too; shorten reload.syn_hold or give the row a longer reload_interval`}},
		{name: "row_interval_fits", edits: []string{"  interval: 250ms", "  interval: 100ms"},
			tail: "matrix:\n  - {name: hold, mitigations: [syn-hold], reload_interval: 1s, reload_jitter: 200ms}\n"},
		{name: "row_interval_too_short", edits: []string{"  jitter: 0s", "  jitter: 0s\n  syn_drop: {before: 50ms, after: 30ms}"},
			tail: "matrix:\n  - {name: drop, mitigations: [syn-drop], reload_interval: 100ms, reload_jitter: 30ms}\n",
			want: []string{`t.yaml:29: matrix[0].mitigations[0]: syn-drop's window (reload.syn_drop before 50ms + after 30ms = 80ms) is longer than the shortest gap between this cell's reloads (the row's reload_interval 100ms - jitter 30ms = 70ms): it would cover the next reload's window too; shorten reload.syn_drop or give the row a longer reload_interval`}},
		{name: "row_interval_bad", tail: `matrix:
  - {name: a, reload_interval: -1s}
  - {name: b, reload_interval: 1s, reload_jitter: 1s}
  - {name: c, reload_jitter: 10ms}
  - {name: d, reload_interval: 1s}
`, want: []string{
			`t.yaml:28: matrix[0].reload_interval: -1s must be > 0`,
			`t.yaml:29: matrix[1].reload_jitter: 1s must be >= 0 and < reload_interval (1s)`,
			`t.yaml:30: matrix[2].reload_jitter: set without reload_interval (the storm's jitter is reload.jitter)`,
		}},
		// Axes: a level's reload_interval reaches its cells, and each generated cell is checked.
		{name: "axes", tail: `axes:
  - name: every
    levels:
      - {name: fast, reload_interval: 100ms}
      - {name: slow, reload_interval: 5s, reload_jitter: 1s}
  - name: mit
    levels:
      - {name: drop, mitigations: [syn-drop]}
      - {name: hold, mitigations: [syn-hold]}
`, want: []string{
			`t.yaml:34: axes[1].levels[0].mitigations[0]: syn-drop's window (reload.syn_drop before 20ms + after 100ms = 120ms) is longer than the shortest gap between this cell's reloads (the row's reload_interval 100ms - jitter 0s = 100ms): it would cover the next reload's window too; shorten reload.syn_drop or give the row a longer reload_interval`,
			`t.yaml:35: axes[1].levels[1].mitigations[0]: syn-hold's window (reload.syn_hold before 20ms + after 100ms = 120ms) is longer than the shortest gap between this cell's reloads (the row's reload_interval 100ms - jitter 0s = 100ms): it would cover the next reload's window too; shorten reload.syn_hold or give the row a longer reload_interval`,
		}},
		{name: "hold_negative", edits: []string{"  jitter: 0s", "  jitter: 0s\n  syn_hold: {after: -1ms}"},
			want: []string{`t.yaml:27: reload.syn_hold.after: -1ms must be >= 0`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(edit(t, tt.tail, tt.edits...)))
			var got []string
			var se *Error
			if errors.As(err, &se) {
				for _, p := range se.Problems {
					got = append(got, p.String())
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestExpandReloadInterval: a row's reload_interval and reload_jitter replace the storm's in its cell only.
func TestExpandReloadInterval(t *testing.T) {
	s, err := Parse("t.yaml", []byte(edit(t, "matrix:\n  - {name: fast}\n  - {name: slow, reload_interval: 5s, reload_jitter: 1s}\n  - {name: calm, reload: none}\n",
		"  jitter: 0s", "  jitter: 20ms")))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*Reload{}
	for _, c := range Expand(s, false) {
		got[c.Name] = c.Scenario.Reload
	}
	if r := got["fast"]; r == nil || r.Interval != 250*time.Millisecond || r.Jitter != 20*time.Millisecond {
		t.Errorf("fast: %+v", r)
	}
	if r := got["slow"]; r == nil || r.Interval != 5*time.Second || r.Jitter != time.Second {
		t.Errorf("slow: %+v", r)
	}
	if got["calm"] != nil {
		t.Errorf("calm: %+v, want no storm", got["calm"])
	}
	if s.Reload.Interval != 250*time.Millisecond {
		t.Errorf("the scenario's own interval changed: %s", s.Reload.Interval)
	}
}
