package results

import (
	"cmp"
	"maps"
	"slices"
	"sort"
	"time"
)

// DefaultWindowWidth is the width of the fixed windows used for a repetition without reloads.
const DefaultWindowWidth = time.Second

// Window kinds, as reported in CellStats.WindowKind.
const (
	WindowReload = "reload" // one window per reload, bounded by the midpoints between reload starts
	WindowFixed  = "fixed"  // fixed-width windows (no reloads)
	WindowMixed  = "mixed"  // some repetitions had reloads and some did not
)

// Window is the clustering unit of the statistics: the attempts whose intended start is nearest to one reload
// (or that fall in one fixed-width slice of time when there are no reloads). Start and End are offsets from the
// cell's start; the window holds attempts with Start <= Intended < End.
type Window struct {
	Rep       int             `json:"rep"`
	Index     int             `json:"index"`
	Start     time.Duration   `json:"start_ns"`
	End       time.Duration   `json:"end_ns"`
	Reload    int             `json:"reload_seq"` // Seq of the window's reload; -1 for a fixed window
	Attempts  int             `json:"attempts"`
	Failures  int             `json:"failures"`
	ByOutcome map[Outcome]int `json:"by_outcome,omitempty"`
}

// Resets counts the window's refused and reset attempts.
func (w *Window) Resets() int { return w.ByOutcome[OutcomeRefused] + w.ByOutcome[OutcomeReset] }

// WindowOptions configures the assignment of attempts to windows.
type WindowOptions struct {
	// Width of the fixed windows used for repetitions without reloads; DefaultWindowWidth when zero.
	Width time.Duration
	// End is the cell's duration: the end of its last window. When zero (or earlier than the data), the last
	// window ends just after the latest attempt or reload.
	End time.Duration
}

// Windower assigns attempts to windows as they stream in, one set of windows per repetition. Repetitions with
// reloads get one window per reload (nearest reload by intended start); those without get fixed windows.
type Windower struct {
	opt     WindowOptions
	reloads map[int][]ReloadEvent
	reps    map[int]*repWindows
}

type repWindows struct {
	bounds  []int64 // reload mode: window i is [bounds[i-1], bounds[i]), the first from 0, the last to the end
	reloads []ReloadEvent
	wins    []Window
	last    int64 // latest intended time or reload end seen, for the end of the last window
}

// NewWindower returns a Windower for one cell's reloads (of all its repetitions).
func NewWindower(reloads []ReloadEvent, opt WindowOptions) *Windower {
	if opt.Width <= 0 {
		opt.Width = DefaultWindowWidth
	}
	w := &Windower{opt: opt, reloads: map[int][]ReloadEvent{}, reps: map[int]*repWindows{}}
	for _, ev := range reloads {
		w.reloads[ev.Rep] = append(w.reloads[ev.Rep], ev)
	}
	for rep := range w.reloads {
		w.rep(rep)
	}
	return w
}

// rep returns the windows of repetition rep, creating them from its reloads on first use.
func (w *Windower) rep(rep int) *repWindows {
	if rw, ok := w.reps[rep]; ok {
		return rw
	}
	evs := slices.Clone(w.reloads[rep])
	slices.SortStableFunc(evs, func(a, b ReloadEvent) int { return cmp.Compare(a.Start, b.Start) })
	rw := &repWindows{reloads: evs}
	for i, ev := range evs {
		rw.wins = append(rw.wins, Window{Rep: rep, Index: i, Reload: ev.Seq})
		rw.last = max(rw.last, ev.End)
		if i > 0 {
			mid := evs[i-1].Start + (ev.Start-evs[i-1].Start)/2
			rw.bounds = append(rw.bounds, mid)
			rw.wins[i].Start = time.Duration(mid)
			rw.wins[i-1].End = time.Duration(mid)
		}
	}
	w.reps[rep] = rw
	return rw
}

// Add assigns one attempt to its window.
func (w *Windower) Add(r *Record) {
	rw := w.rep(r.Rep)
	t := max(r.Intended, 0)
	rw.last = max(rw.last, t+1)
	var win *Window
	if len(rw.reloads) > 0 {
		win = &rw.wins[sort.Search(len(rw.bounds), func(i int) bool { return rw.bounds[i] > t })]
	} else {
		win = rw.fixed(r.Rep, int(t/int64(w.opt.Width)), w.opt.Width)
	}
	win.Attempts++
	if r.Failed() {
		win.Failures++
	}
	if win.ByOutcome == nil {
		win.ByOutcome = map[Outcome]int{}
	}
	win.ByOutcome[r.Outcome]++
}

// fixed returns fixed window i, growing the list as needed.
func (rw *repWindows) fixed(rep, i int, width time.Duration) *Window {
	for len(rw.wins) <= i {
		n := len(rw.wins)
		rw.wins = append(rw.wins, Window{Rep: rep, Index: n, Reload: -1,
			Start: time.Duration(n) * width, End: time.Duration(n+1) * width})
	}
	return &rw.wins[i]
}

// Windows returns the windows of all repetitions, pooled, ordered by repetition and index. The last window of
// each repetition ends at the cell's end; fixed windows cover the whole cell, so some may be empty.
func (w *Windower) Windows() []Window {
	var out []Window
	for _, rep := range slices.Sorted(maps.Keys(w.reps)) {
		rw := w.reps[rep]
		end := max(int64(w.opt.End), rw.last)
		if len(rw.reloads) == 0 && end > 0 {
			rw.fixed(rep, int((end-1)/int64(w.opt.Width)), w.opt.Width)
		}
		if n := len(rw.wins); n > 0 {
			rw.wins[n-1].End = time.Duration(end)
		}
		for _, win := range rw.wins {
			win.ByOutcome = maps.Clone(win.ByOutcome)
			out = append(out, win)
		}
	}
	return out
}

// Kind says how the windows were formed: WindowReload, WindowFixed or WindowMixed ("" with no data).
func (w *Windower) Kind() string {
	var withReloads, without int
	for _, rw := range w.reps {
		if len(rw.reloads) > 0 {
			withReloads++
		} else {
			without++
		}
	}
	switch {
	case withReloads > 0 && without > 0:
		return WindowMixed
	case withReloads > 0:
		return WindowReload
	case without > 0:
		return WindowFixed
	}
	return ""
}

// Windows assigns a cell's records (any number of repetitions) to windows around its reloads; see Windower.
func Windows(records []Record, reloads []ReloadEvent, opt WindowOptions) []Window {
	w := NewWindower(reloads, opt)
	for i := range records {
		w.Add(&records[i])
	}
	return w.Windows()
}
