package impair

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The netem engine cannot run on the lab machines (no sch_netem), so its messages are checked byte for
// byte here: the qdisc object netlink builds and the RTM_NEWQDISC request the engine sends.

// ticks is the kernel's psched ticks for µs, as netlink computes them from /proc/net/psched.
func ticks(us uint32) uint32 { return uint32(float64(us) * netlink.TickInUsec()) }

func TestNetemQdiscUnits(t *testing.T) {
	imp := Impairment{Delay: 40 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.01, KeepOrder: true}
	q := netemQdisc(qattrs(7, netlink.HANDLE_ROOT, rootHandle), imp)
	if q.Latency != ticks(40000) || q.Jitter != ticks(5000) {
		t.Errorf("latency/jitter: got %d/%d ticks, want %d/%d (40000/5000 µs)", q.Latency, q.Jitter,
			ticks(40000), ticks(5000))
	}
	if want := netlink.Percentage2u32(1); q.Loss != want {
		t.Errorf("loss: got %d, want %d (1 percent)", q.Loss, want)
	}
	if q.Loss < 42949672-1 || q.Loss > 42949672+1 {
		t.Errorf("loss: %d is not 1%% of 2^32", q.Loss)
	}
	if q.Limit != netemLimit || q.Rate64 != keepOrderRate {
		t.Errorf("limit %d rate64 %d, want %d and %d (keep_order)", q.Limit, q.Rate64, netemLimit, keepOrderRate)
	}
	if q.LinkIndex != 7 || q.Parent != netlink.HANDLE_ROOT || q.Handle != rootHandle {
		t.Errorf("attrs: %+v", q.QdiscAttrs)
	}
	plain := netemQdisc(qattrs(7, netlink.HANDLE_ROOT, rootHandle), Impairment{Delay: 20 * time.Millisecond})
	if plain.Rate64 != 0 || plain.Jitter != 0 || plain.Loss != 0 {
		t.Errorf("plain delay: rate64 %d jitter %d loss %d, want zeros", plain.Rate64, plain.Jitter, plain.Loss)
	}
}

func TestGEModelUnits(t *testing.T) {
	got := geModel(GilbertElliott{P: 0.01, R: 0.25, OneMinusH: 0.7, OneMinusK: 0.001})
	want := [4]uint32{netlink.Percentage2u32(1), netlink.Percentage2u32(25), netlink.Percentage2u32(30),
		netlink.Percentage2u32(0.1)}
	if got != want {
		t.Errorf("gemodel {p r h k1}: got %v, want %v", got, want)
	}
}

// attr is one parsed rtattr.
type attr struct {
	typ  uint16
	data []byte
}

func parseAttrs(t *testing.T, b []byte) []attr {
	t.Helper()
	var out []attr
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		if l < 4 || l > len(b) {
			t.Fatalf("bad rtattr length %d of %d", l, len(b))
		}
		out = append(out, attr{binary.NativeEndian.Uint16(b[2:]) &^ unix.NLA_F_NESTED, b[4:l]})
		b = b[min(nlaAlign(l), len(b)):]
	}
	return out
}

func nlaAlign(n int) int { return (n + 3) &^ 3 }

func find(t *testing.T, attrs []attr, typ uint16) []byte {
	t.Helper()
	for _, a := range attrs {
		if a.typ == typ {
			return a.data
		}
	}
	t.Fatalf("attribute %d missing", typ)
	return nil
}

func has(attrs []attr, typ uint16) bool {
	for _, a := range attrs {
		if a.typ == typ {
			return true
		}
	}
	return false
}

func TestNetemRequest(t *testing.T) {
	imp := Impairment{Delay: 40 * time.Millisecond, Jitter: 5 * time.Millisecond, Distribution: Normal,
		KeepOrder: true, LossBurst: &GilbertElliott{P: 0.02, R: 0.5, OneMinusH: 1, OneMinusK: 0}}
	msg := netemRequest(9, netlink.HANDLE_ROOT, rootHandle, imp, unix.NLM_F_CREATE|unix.NLM_F_REPLACE).Serialize()
	if typ := binary.NativeEndian.Uint16(msg[4:]); typ != unix.RTM_NEWQDISC {
		t.Fatalf("message type %d, want RTM_NEWQDISC", typ)
	}
	wantFlags := uint16(unix.NLM_F_REQUEST | unix.NLM_F_ACK | unix.NLM_F_CREATE | unix.NLM_F_REPLACE)
	if flags := binary.NativeEndian.Uint16(msg[6:]); flags != wantFlags {
		t.Errorf("flags %#x, want %#x", flags, wantFlags)
	}
	tcm := msg[unix.SizeofNlMsghdr:]
	if ifi := int32(binary.NativeEndian.Uint32(tcm[4:])); ifi != 9 {
		t.Errorf("tcmsg ifindex %d, want 9", ifi)
	}
	if h, p := binary.NativeEndian.Uint32(tcm[8:]), binary.NativeEndian.Uint32(tcm[12:]); h != rootHandle ||
		p != netlink.HANDLE_ROOT {
		t.Errorf("tcmsg handle %#x parent %#x", h, p)
	}
	top := parseAttrs(t, tcm[nl.SizeofTcMsg:])
	if kind := string(find(t, top, nl.TCA_KIND)); kind != "netem\x00" {
		t.Errorf("kind %q", kind)
	}
	opts := find(t, top, nl.TCA_OPTIONS)
	// struct tc_netem_qopt {latency, limit, loss, gap, duplicate, jitter}, then nested attributes.
	qopt := opts[:nl.SizeofTcNetemQopt]
	u32 := func(i int) uint32 { return binary.NativeEndian.Uint32(qopt[4*i:]) }
	if u32(0) != ticks(40000) || u32(5) != ticks(5000) {
		t.Errorf("qopt latency %d jitter %d ticks, want %d and %d", u32(0), u32(5), ticks(40000), ticks(5000))
	}
	if u32(1) != netemLimit || u32(2) != 0 {
		t.Errorf("qopt limit %d loss %d, want %d and 0 (burst loss goes in TCA_NETEM_LOSS)", u32(1), u32(2),
			netemLimit)
	}
	nested := parseAttrs(t, opts[nl.SizeofTcNetemQopt:])
	dist := find(t, nested, nl.TCA_NETEM_DELAY_DIST)
	table := normalTable()
	if len(dist) != 2*len(table) {
		t.Fatalf("dist table %d bytes, want %d", len(dist), 2*len(table))
	}
	for i, v := range table {
		if got := int16(binary.NativeEndian.Uint16(dist[2*i:])); got != v {
			t.Fatalf("dist[%d] = %d, want %d", i, got, v)
		}
	}
	loss := parseAttrs(t, find(t, nested, nl.TCA_NETEM_LOSS))
	ge := find(t, loss, netemLossGE)
	want := geModel(*imp.LossBurst)
	for i := range want {
		if got := binary.NativeEndian.Uint32(ge[4*i:]); got != want[i] {
			t.Errorf("gemodel[%d] = %d, want %d", i, got, want[i])
		}
	}
	if got := binary.NativeEndian.Uint64(find(t, nested, nl.TCA_NETEM_RATE64)); got != keepOrderRate {
		t.Errorf("rate64 %d, want %d", got, keepOrderRate)
	}
	if got := binary.NativeEndian.Uint32(find(t, nested, nl.TCA_NETEM_RATE)); got != ^uint32(0) {
		t.Errorf("rate %d, want 0xffffffff beside rate64", got)
	}
}

func TestNetemRequestPlain(t *testing.T) {
	imp := Impairment{Delay: 20 * time.Millisecond, Jitter: 2 * time.Millisecond, Loss: 0.05}
	msg := netemRequest(3, netlink.HANDLE_ROOT, rootHandle, imp, unix.NLM_F_CREATE).Serialize()
	top := parseAttrs(t, msg[unix.SizeofNlMsghdr+nl.SizeofTcMsg:])
	opts := find(t, top, nl.TCA_OPTIONS)
	if got := binary.NativeEndian.Uint32(opts[8:]); got != netlink.Percentage2u32(5) {
		t.Errorf("loss %d, want %d (5 percent)", got, netlink.Percentage2u32(5))
	}
	nested := parseAttrs(t, opts[nl.SizeofTcNetemQopt:])
	for _, typ := range []uint16{nl.TCA_NETEM_DELAY_DIST, nl.TCA_NETEM_LOSS, nl.TCA_NETEM_RATE,
		nl.TCA_NETEM_RATE64} {
		if has(nested, typ) {
			t.Errorf("uniform jitter, random loss, no keep_order: attribute %d present", typ)
		}
	}
}

func TestTBFUnits(t *testing.T) {
	for _, tc := range []struct {
		rate              Rate
		rateB, burst, lim uint64
	}{
		{10_000_000, 1_250_000, 6250, 6250 + 125_000},
		{50_000_000, 6_250_000, 31_250, 31_250 + 625_000},
		{64_000, 8_000, 6056, 6056 + 15_140},
	} {
		p := tbfFor(tc.rate)
		if uint64(p.RateBytes) != tc.rateB || uint64(p.BurstBytes) != tc.burst || uint64(p.LimitBytes) != tc.lim {
			t.Errorf("%s: got %+v, want rate %d burst %d limit %d", tc.rate, p, tc.rateB, tc.burst, tc.lim)
		}
		q := tbfQdisc(qattrs(1, netlink.HANDLE_ROOT, rootHandle), p)
		if q.Rate != p.RateBytes || q.Limit != p.LimitBytes || q.Buffer != netlink.Xmittime(p.RateBytes, p.BurstBytes) {
			t.Errorf("%s: tbf %+v", tc.rate, q)
		}
	}
}

func TestLossThreshold(t *testing.T) {
	for p, want := range map[float64]uint32{0.01: 10_000, 0.05: 50_000, 1: 1_000_000, 0.000001: 1, 0.123456: 123_456} {
		if got := lossThreshold(p); got != want {
			t.Errorf("lossThreshold(%g) = %d, want %d", p, got, want)
		}
	}
}
