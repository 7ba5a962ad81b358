package spec

import (
	"fmt"
	"slices"
)

// Mitigations that act in a window around each reload, with the reload section's field holding the window.
var reloadWindows = []struct{ mitigation, field string }{
	{"syn-drop", "syn_drop"},
	{"syn-hold", "syn_hold"},
}

// window fills in the defaults of a syn-drop or syn-hold window (20ms before, 100ms after) and checks it.
func (v *validator) window(path string, w *SynDrop) {
	if !v.set(path+".before", w.Before != 0) {
		w.Before = defaultBefore
	} else if w.Before < 0 {
		v.add(path+".before", "%s must be >= 0", w.Before)
	}
	if !v.set(path+".after", w.After != 0) {
		w.After = defaultAfter
	} else if w.After < 0 {
		v.add(path+".after", "%s must be >= 0", w.After)
	}
}

// reloadFaults checks every cell's reload storm: a row's reload_interval and reload_jitter, and that the
// window of each windowed mitigation (syn-drop, syn-hold) fits in the shortest gap between two reloads of
// the cell (interval - jitter). A longer window covers the next reload's window too: at 10 reloads/s a
// 230 ms syn-drop window dropped SYNs almost all the time, and the cell measured a blocked frontend, not
// the mitigation.
func (v *validator) reloadFaults(s *Scenario) {
	r := s.Reload
	if r == nil {
		for i, row := range s.Matrix {
			if v.set(fmt.Sprintf("matrix[%d].reload_interval", i), row.ReloadInterval != 0) {
				v.add(fmt.Sprintf("matrix[%d].reload_interval", i),
					"sets a reload interval, but the scenario has no reload section")
			}
		}
		return
	}
	for i := range s.Matrix {
		v.rowReload(fmt.Sprintf("matrix[%d]", i), &s.Matrix[i], r)
	}
}

// rowReload checks one row's reload rate and the windows of its mitigations against it.
func (v *validator) rowReload(p string, row *CellSpec, r *Reload) {
	interval, jitter, where := r.Interval, r.Jitter, "reload.interval"
	if v.set(p+".reload_interval", row.ReloadInterval != 0) {
		interval, jitter, where = row.ReloadInterval, row.ReloadJitter, "the row's reload_interval"
		if row.ReloadInterval <= 0 {
			v.add(p+".reload_interval", "%s must be > 0", row.ReloadInterval)
			return
		}
		if row.ReloadJitter < 0 || row.ReloadJitter >= row.ReloadInterval {
			v.add(p+".reload_jitter", "%s must be >= 0 and < reload_interval (%s)", row.ReloadJitter,
				row.ReloadInterval)
			return
		}
	} else if v.set(p+".reload_jitter", row.ReloadJitter != 0) {
		v.add(p+".reload_jitter", "set without reload_interval (the storm's jitter is reload.jitter)")
	}
	if interval <= 0 || jitter < 0 || jitter >= interval {
		return // reported with the reload section
	}
	for j, m := range row.Mitigations {
		k := slices.IndexFunc(reloadWindows, func(w struct{ mitigation, field string }) bool {
			return w.mitigation == m
		})
		if k < 0 {
			continue
		}
		win := r.SynDrop
		if m == "syn-hold" {
			win = r.SynHold
		}
		if gap := interval - jitter; win.Before+win.After > gap {
			f := reloadWindows[k].field
			v.add(fmt.Sprintf("%s.mitigations[%d]", p, j), "%s's window (reload.%s before %s + after %s = %s) "+
				"is longer than the shortest gap between this cell's reloads (%s %s - jitter %s = %s): it would "+
				"cover the next reload's window too; shorten reload.%s or give the row a longer reload_interval",
				m, f, win.Before, win.After, win.Before+win.After, where, interval, jitter, gap, f)
		}
	}
}
