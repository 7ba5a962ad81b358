package results

import (
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

func rec(rep int, intended int64, o Outcome) Record {
	return Record{Rep: rep, Intended: intended, Start: intended, Outcome: o}
}

func reload(rep, seq int, start int64) ReloadEvent {
	return ReloadEvent{Rep: rep, Seq: seq, Start: start, End: start + 50*ms, OK: true}
}

// span is a window's [start, end) and counts, for comparison.
type span struct {
	rep, reload     int
	start, end      int64
	attempts, fails int
}

func spans(ws []Window) []span {
	var out []span
	for _, w := range ws {
		out = append(out, span{w.Rep, w.Reload, int64(w.Start), int64(w.End), w.Attempts, w.Failures})
	}
	return out
}

func TestWindows(t *testing.T) {
	ok, rst := OutcomeOK, OutcomeReset
	tests := []struct {
		name    string
		records []Record
		reloads []ReloadEvent
		opt     WindowOptions
		want    []span
	}{{
		name: "nearest_reload_midpoints",
		records: []Record{rec(0, 0, ok), rec(0, 1400*ms, rst), rec(0, 1500*ms, rst), rec(0, 2999*ms, ok),
			rec(0, 3000*ms, ok), rec(0, 9000*ms, rst)},
		// reloads out of order: windows follow start times; bounds at 1.5 s and 3 s
		reloads: []ReloadEvent{reload(0, 2, 4000*ms), reload(0, 0, 1000*ms), reload(0, 1, 2000*ms)},
		opt:     WindowOptions{End: 10000 * time.Millisecond},
		want: []span{{0, 0, 0, 1500 * ms, 2, 1}, {0, 1, 1500 * ms, 3000 * ms, 2, 1},
			{0, 2, 3000 * ms, 10000 * ms, 2, 1}},
	}, {
		name:    "fixed_windows_without_reloads",
		records: []Record{rec(0, 100*ms, ok), rec(0, 999*ms, rst), rec(0, 1000*ms, ok), rec(0, 3500*ms, rst)},
		opt:     WindowOptions{End: 4000 * time.Millisecond},
		want: []span{{0, -1, 0, 1000 * ms, 2, 1}, {0, -1, 1000 * ms, 2000 * ms, 1, 0},
			{0, -1, 2000 * ms, 3000 * ms, 0, 0}, {0, -1, 3000 * ms, 4000 * ms, 1, 1}},
	}, {
		name:    "fixed_width_and_end_from_data",
		records: []Record{rec(0, 100*ms, ok), rec(0, 700*ms, rst)},
		opt:     WindowOptions{Width: 500 * time.Millisecond},
		want:    []span{{0, -1, 0, 500 * ms, 1, 0}, {0, -1, 500 * ms, 700*ms + 1, 1, 1}},
	}, {
		name:    "reps_pooled_each_with_own_reloads",
		records: []Record{rec(1, 100*ms, rst), rec(0, 100*ms, ok), rec(0, 900*ms, rst), rec(1, 900*ms, ok)},
		reloads: []ReloadEvent{reload(0, 0, 0), reload(0, 1, 1000*ms), reload(1, 0, 500*ms)},
		opt:     WindowOptions{End: 1000 * time.Millisecond},
		want: []span{{0, 0, 0, 500 * ms, 1, 0}, {0, 1, 500 * ms, 1050 * ms, 1, 1},
			{1, 0, 0, 1000 * ms, 2, 1}},
	}, {
		name:    "reload_without_attempts_is_an_empty_window",
		records: []Record{rec(0, 100*ms, ok)},
		reloads: []ReloadEvent{reload(0, 0, 100*ms), reload(0, 1, 5000*ms)},
		want:    []span{{0, 0, 0, 2550 * ms, 1, 0}, {0, 1, 2550 * ms, 5050 * ms, 0, 0}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := spans(Windows(tc.records, tc.reloads, tc.opt))
			if len(got) != len(tc.want) {
				t.Fatalf("got %d windows %+v, want %d %+v", len(got), got, len(tc.want), tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("window %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestWindowByOutcomeAndKind(t *testing.T) {
	w := NewWindower([]ReloadEvent{reload(0, 0, 0)}, WindowOptions{})
	for _, o := range []Outcome{OutcomeRefused, OutcomeReset, OutcomeTimeout, OutcomeOK} {
		r := rec(0, 10*ms, o)
		w.Add(&r)
	}
	r := rec(1, 10*ms, OutcomeOK) // a repetition without reloads
	w.Add(&r)
	ws := w.Windows()
	if got := ws[0].Resets(); got != 2 {
		t.Errorf("Resets() = %d, want 2", got)
	}
	if ws[0].ByOutcome[OutcomeTimeout] != 1 || ws[0].Failures != 3 {
		t.Errorf("window = %+v, want 1 timeout and 3 failures", ws[0])
	}
	if k := w.Kind(); k != WindowMixed {
		t.Errorf("Kind() = %q, want %q", k, WindowMixed)
	}
}
