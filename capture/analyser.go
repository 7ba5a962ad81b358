package capture

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// analyser is the state of one Analyse run.
type analyser struct {
	opts      Options
	res       Result
	dirs      map[[2]netip.Addr]*dirStats
	conns     map[connKey]*conn
	sum       summaryAgg
	started   bool
	nextSweep time.Time
	sweepStep time.Duration
	nextID    uint64
}

// dirStats accumulates one direction; windows are kept in a map so a damaged timestamp cannot make the
// analyser allocate a slice for years of windows.
type dirStats struct {
	d       Direction
	wins    map[int64]*Counts
	lastIdx int64
	last    *Counts
}

func newAnalyser(opts Options, linkType string) *analyser {
	if opts.Window <= 0 {
		opts.Window = time.Second
	}
	if opts.ConnIdle <= 0 {
		opts.ConnIdle = 2 * time.Minute
	}
	if opts.ClosedLinger <= 0 {
		opts.ClosedLinger = 10 * time.Second
	}
	a := &analyser{opts: opts, dirs: map[[2]netip.Addr]*dirStats{}, conns: map[connKey]*conn{},
		sum: newSummaryAgg(), sweepStep: min(opts.ClosedLinger, opts.ConnIdle)}
	a.res = Result{LinkType: linkType, Window: opts.Window, Origin: opts.Origin, RSTBy: map[Role]uint64{}}
	return a
}

// packet analyses one captured packet.
func (a *analyser) packet(link linkDecoder, data []byte, wireLen int, ts time.Time) {
	a.res.Records++
	if !a.started {
		a.started = true
		a.res.First = ts
		if a.res.Origin.IsZero() {
			a.res.Origin = ts
		}
		a.nextSweep = ts.Add(a.sweepStep)
	}
	a.res.Last = ts
	var s segment
	switch decodePacket(link, data, wireLen, &s) {
	case decodedOther:
		a.res.Other++
		return
	case decodedMalformed:
		a.res.Malformed++
		return
	}
	a.res.TCP++
	if ts.After(a.nextSweep) {
		a.sweep(ts)
	}
	c, i := a.connFor(&s, ts)
	ev := c.update(i, &s, ts)
	d := c.dirs[i]
	d.d.Total.count(&s, ev)
	d.window(a.windowIndex(ts)).count(&s, ev)
	if s.flags&flagRST != 0 {
		a.res.RSTBy[d.d.SrcRole]++
	}
}

func (c *Counts) count(s *segment, ev events) {
	c.Packets++
	c.PayloadBytes += uint64(s.payload)
	switch s.flags & (flagSYN | flagACK) {
	case flagSYN:
		c.SYN++
	case flagSYN | flagACK:
		c.SYNACK++
	}
	if s.flags&flagRST != 0 {
		c.RST++
	}
	if s.flags&flagFIN != 0 {
		c.FIN++
	}
	if ev != 0 {
		c.SYNRetrans += uint64(ev & evSYNRetrans)
		c.SYNACKRetrans += uint64(ev&evSYNACKRetrans) >> 1
		c.ZeroWindow += uint64(ev&evZeroWindow) >> 2
		c.WindowFull += uint64(ev&evWindowFull) >> 3
	}
}

func (a *analyser) windowIndex(ts time.Time) int64 {
	if !ts.After(a.res.Origin) {
		return 0
	}
	return int64(ts.Sub(a.res.Origin) / a.opts.Window)
}

func (d *dirStats) window(idx int64) *Counts {
	if d.last != nil && d.lastIdx == idx {
		return d.last
	}
	w := d.wins[idx]
	if w == nil {
		w = &Counts{}
		d.wins[idx] = w
	}
	d.lastIdx, d.last = idx, w
	return w
}

// connFor finds (or starts) the connection of s and returns it with the index of the sending side.
func (a *analyser) connFor(s *segment, ts time.Time) (*conn, int) {
	src, dst := netip.AddrPortFrom(s.src, s.sport), netip.AddrPortFrom(s.dst, s.dport)
	k := connKey{src, dst}
	if src.Compare(dst) > 0 {
		k = connKey{dst, src}
	}
	c := a.conns[k]
	if s.flags&(flagSYN|flagACK|flagRST) == flagSYN {
		// A SYN is a retransmission only if it repeats the initiator's ISN; anything else starts a new
		// connection on the same address pair (port reuse).
		if c != nil && (c.side[0].end.Addr != src || !c.side[0].sawSYN || c.side[0].isn != s.seq) {
			a.finishConn(c)
			delete(a.conns, k)
			c = nil
		}
		if c == nil {
			c = a.newConn(k, src, dst, ts, false)
		}
	} else if c == nil {
		if s.flags&(flagSYN|flagACK) == flagSYN|flagACK {
			c = a.newConn(k, dst, src, ts, true)
		} else {
			c = a.newConn(k, src, dst, ts, true)
		}
	}
	if c.side[0].end.Addr == src {
		return c, 0
	}
	return c, 1
}

func (a *analyser) newConn(k connKey, init, resp netip.AddrPort, ts time.Time, partial bool) *conn {
	a.nextID++
	c := &conn{id: a.nextID, start: ts, last: ts, partial: partial, closedFirst: -1}
	c.side[0].end = ConnEnd{Addr: init, Role: a.role(init)}
	c.side[1].end = ConnEnd{Addr: resp, Role: a.role(resp)}
	c.side[0].wscale, c.side[1].wscale = -1, -1
	c.dirs[0] = a.dir(init, resp)
	c.dirs[1] = a.dir(resp, init)
	a.conns[k] = c
	return c
}

func (a *analyser) role(ap netip.AddrPort) Role {
	if r, ok := a.opts.Roles[ap.Addr()]; ok {
		return r
	}
	return RoleUnknown
}

func (a *analyser) dir(src, dst netip.AddrPort) *dirStats {
	key := [2]netip.Addr{src.Addr(), dst.Addr()}
	d := a.dirs[key]
	if d == nil {
		d = &dirStats{wins: map[int64]*Counts{}, d: Direction{Src: src.Addr(), Dst: dst.Addr(),
			SrcRole: a.role(src), DstRole: a.role(dst)}}
		a.dirs[key] = d
	}
	return d
}

// sweep finishes connections that have been silent long enough: closed ones after ClosedLinger, others
// after ConnIdle.
func (a *analyser) sweep(now time.Time) {
	a.nextSweep = now.Add(a.sweepStep)
	for k, c := range a.conns {
		idle := now.Sub(c.last)
		if idle > a.opts.ConnIdle || (idle > a.opts.ClosedLinger && c.closed()) {
			a.finishConn(c)
			delete(a.conns, k)
		}
	}
}

func (a *analyser) finishConn(c *conn) {
	out := c.export()
	a.sum.add(&out)
	if a.opts.KeepConns {
		a.res.ConnList = append(a.res.ConnList, out)
	}
	if a.opts.OnConn != nil {
		a.opts.OnConn(out)
	}
}

// finish finishes every connection still open (in the order they appeared) and assembles the result.
func (a *analyser) finish() *Result {
	open := make([]*conn, 0, len(a.conns))
	for _, c := range a.conns {
		open = append(open, c)
	}
	slices.SortFunc(open, func(x, y *conn) int { return cmp.Compare(x.id, y.id) })
	for _, c := range open {
		a.finishConn(c)
	}
	clear(a.conns)
	a.res.Conns = a.sum.summary()
	a.res.Directions = a.res.Directions[:0]
	for _, d := range a.dirs {
		dir := d.d
		idxs := make([]int64, 0, len(d.wins))
		for i := range d.wins {
			idxs = append(idxs, i)
		}
		slices.Sort(idxs)
		dir.Windows = make([]Window, len(idxs))
		for j, i := range idxs {
			dir.Windows[j] = Window{Start: time.Duration(i) * a.opts.Window, Counts: *d.wins[i]}
		}
		a.res.Directions = append(a.res.Directions, dir)
	}
	slices.SortFunc(a.res.Directions, func(x, y Direction) int {
		return cmp.Or(x.Src.Compare(y.Src), x.Dst.Compare(y.Dst))
	})
	slices.SortStableFunc(a.res.ConnList, func(x, y Conn) int {
		return cmp.Or(x.Start.Compare(y.Start), x.Initiator.Addr.Compare(y.Initiator.Addr))
	})
	return &a.res
}
