package peers

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// Ratio is one comparison of the table: the lab's figure beside the best peer's, in the same run.
type Ratio struct {
	What   string  // e.g. "load: highest rate held within 1%"
	Unit   string  // of Lab and Peer
	Lab    float64 // the lab's figure
	Peer   float64 // the best peer's figure
	PeerBy string  // which peer
	// HigherIsBetter orients the ratio: Value is Lab/Peer when higher is better (rates), Peer/Lab when lower is
	// (time, CPU, memory), so a value above 1 always means the lab did better.
	HigherIsBetter bool
	Note           string // how it was measured, a caveat, or why there is no figure
}

// Value is the oriented ratio; NaN when either side is missing (zero, negative or NaN), or when the lower-is-
// better figure of the lab is zero.
func (r Ratio) Value() float64 {
	if !(r.Lab > 0) || !(r.Peer > 0) {
		return math.NaN()
	}
	if r.HigherIsBetter {
		return r.Lab / r.Peer
	}
	return r.Peer / r.Lab
}

// Below1 says whether the lab did worse than the best peer (a ratio that must come with a profile).
func (r Ratio) Below1() bool { v := r.Value(); return !math.IsNaN(v) && v < 1 }

// BestPeer picks among peers' figures the best one (the highest when higherIsBetter, else the lowest),
// ignoring missing (non-positive) figures; ok is false when none is there.
func BestPeer(figures map[string]float64, higherIsBetter bool) (name string, v float64, ok bool) {
	for n, f := range figures {
		if !(f > 0) {
			continue
		}
		better := !ok || (higherIsBetter && f > v) || (!higherIsBetter && f < v) || (f == v && n < name)
		if better {
			name, v, ok = n, f, true
		}
	}
	return name, v, ok
}

// WriteTable writes the ratios as a Markdown table: one line per comparison, the ratio with 2 decimals and
// "(below 1.0)" where the lab did worse, "n/a" where a side has no figure.
func WriteTable(w io.Writer, rows []Ratio) error {
	var b strings.Builder
	b.WriteString("| comparison | lab | best peer | ratio (>1: lab better) | notes |\n|---|---:|---:|---:|---|\n")
	for _, r := range rows {
		ratio := "n/a"
		if v := r.Value(); !math.IsNaN(v) {
			ratio = fmt.Sprintf("%.2f", v)
			if r.Below1() {
				ratio += " (below 1.0)"
			}
		}
		peer := "n/a"
		if r.Peer > 0 {
			peer = FormatFigure(r.Peer, r.Unit) + " (" + r.PeerBy + ")"
		}
		lab := "n/a"
		if r.Lab > 0 {
			lab = FormatFigure(r.Lab, r.Unit)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.What, lab, peer, ratio, r.Note)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// FormatFigure prints v with its unit: thousands separated, 3 significant digits below 100.
func FormatFigure(v float64, unit string) string {
	var s string
	switch {
	case v >= 100:
		s = groupThousands(int64(math.Round(v)))
	case v >= 10:
		s = fmt.Sprintf("%.1f", v)
	default:
		s = fmt.Sprintf("%.3g", v)
	}
	if unit == "" {
		return s
	}
	return s + " " + unit
}

func groupThousands(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	s := fmt.Sprint(n)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
