package results

import (
	"strconv"
	"strings"
	"time"
)

// fmtP formats a p-value with two significant digits.
func fmtP(p float64) string {
	if p == 0 {
		return "<1e-300"
	}
	return strconv.FormatFloat(p, 'g', 2, 64)
}

// fmtPct formats a proportion as a percentage with three significant digits.
func fmtPct(p float64) string {
	if p == 0 {
		return "0%"
	}
	return strconv.FormatFloat(100*p, 'g', 3, 64) + "%"
}

// commas formats n with thousands separators (41,200).
func commas(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtDur formats a duration with about three significant digits (1.23ms, 3.01s, 850µs).
func fmtDur(d time.Duration) string {
	units := []struct {
		div  time.Duration
		name string
	}{{time.Second, "s"}, {time.Millisecond, "ms"}, {time.Microsecond, "µs"}}
	for _, u := range units {
		if d >= u.div || -d >= u.div {
			v := float64(d) / float64(u.div)
			prec := 2
			switch {
			case v >= 100 || v <= -100:
				prec = 0
			case v >= 10 || v <= -10:
				prec = 1
			}
			return strconv.FormatFloat(v, 'f', prec, 64) + u.name
		}
	}
	return strconv.Itoa(int(d)) + "ns"
}
