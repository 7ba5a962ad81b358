package analyses

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// stateLine is the part of a states-<host>.jsonl line the side split reads.
type stateLine struct {
	T       time.Duration  `json:"t_ns"`
	States  map[string]int `json:"states"`
	Orphans int            `json:"orphans"`
	Ports   []struct {
		Name   string         `json:"name"`
		Lo     int            `json:"lo"`
		Hi     int            `json:"hi"`
		States map[string]int `json:"states"`
	} `json:"ports"`
}

// readSides reads the proxy host's states series into r.States and r.Spans. The sampler counts sockets by
// local port in the host's ephemeral range separately: on the proxy's host those are its connections to its
// servers (backend-facing); the rest, listeners aside, are the frontend's (client-facing). That holds only
// when the frontend's port is outside the ephemeral range, which is checked.
func (r *OldProcsResult) readSides(path string, frontend int) error {
	r.Spans = map[string]StateSpan{}
	var prev time.Duration
	err := eachLine(path, func(b []byte) error {
		var l stateLine
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		p, err := splitSides(l, frontend)
		if err != nil {
			return err
		}
		r.States = append(r.States, p)
		r.addSpans(p, p.T-prev)
		prev = p.T
		return nil
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	return nil
}

func splitSides(l stateLine, frontend int) (SidePoint, error) {
	p := SidePoint{T: l.T, Client: map[string]int{}, Backend: map[string]int{}, Orphans: l.Orphans}
	if len(l.Ports) == 0 {
		return p, fmt.Errorf("sample at %s: no port range to split the sides by", l.T)
	}
	eph := l.Ports[0]
	if frontend >= eph.Lo && frontend <= eph.Hi {
		return p, fmt.Errorf("frontend port %d is inside the ephemeral range %d-%d: sides cannot be told apart",
			frontend, eph.Lo, eph.Hi)
	}
	for st, n := range l.States {
		if st == "listen" || n == 0 {
			continue
		}
		if be := eph.States[st]; be > 0 {
			p.Backend[st] = be
		}
		if fe := n - eph.States[st]; fe > 0 {
			p.Client[st] = fe
		}
	}
	return p, nil
}

// addSpans folds one sample, dt after the previous one, into the spans.
func (r *OldProcsResult) addSpans(p SidePoint, dt time.Duration) {
	for _, side := range []struct {
		name   string
		counts map[string]int
	}{{"client", p.Client}, {"backend", p.Backend}} {
		for st := range side.counts {
			if _, ok := r.Spans[side.name+"/"+st]; !ok {
				r.Spans[side.name+"/"+st] = StateSpan{First: p.T}
			}
		}
		for key, sp := range r.Spans {
			st, ok := strings.CutPrefix(key, side.name+"/")
			if !ok {
				continue
			}
			n := side.counts[st]
			sp.AtEnd = n
			sp.Area += float64(n) * dt.Seconds()
			if n > 0 {
				sp.Last = p.T
			}
			if n > sp.Peak {
				sp.Peak, sp.PeakAt = n, p.T
			}
			r.Spans[key] = sp
		}
	}
}
