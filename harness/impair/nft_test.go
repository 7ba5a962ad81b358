package impair

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// The loss rule is what `nft add rule ... oifname "b" numgen random mod 1000000 < 10000 drop` produces
// (checked against nft's own listing in the privileged tests).
func TestLossExprs(t *testing.T) {
	e := lossExprs(nftPath{key: "b/to_host", link: "b", dir: ToHost, loss: 0.01})
	if len(e) != 7 {
		t.Fatalf("%d expressions", len(e))
	}
	if m := e[0].(*expr.Meta); m.Key != expr.MetaKeyOIFNAME {
		t.Errorf("to_host matches %v, want oifname", m.Key)
	}
	if c := e[1].(*expr.Cmp); !bytes.Equal(c.Data, append([]byte("b"), make([]byte, 15)...)) {
		t.Errorf("ifname data %q", c.Data)
	}
	if n := e[2].(*expr.Numgen); n.Modulus != 1_000_000 || n.Type != unix.NFT_NG_RANDOM {
		t.Errorf("numgen %+v", n)
	}
	if b := e[3].(*expr.Byteorder); b.Op != expr.ByteorderHton || b.Size != 4 {
		t.Errorf("byteorder %+v", b)
	}
	if c := e[4].(*expr.Cmp); c.Op != expr.CmpOpLt || binary.BigEndian.Uint32(c.Data) != 10_000 {
		t.Errorf("cmp %+v", c)
	}
	if o := e[5].(*expr.Objref); o.Name != "loss_b_to_host" || o.Type != unix.NFT_OBJECT_COUNTER {
		t.Errorf("counter %+v", o)
	}
	if v := e[6].(*expr.Verdict); v.Kind != expr.VerdictDrop {
		t.Errorf("verdict %+v", v)
	}
	from := lossExprs(nftPath{key: "a/from_host", link: "a", dir: FromHost, loss: 0.5})
	if m := from[0].(*expr.Meta); m.Key != expr.MetaKeyIIFNAME {
		t.Errorf("from_host matches %v, want iifname", m.Key)
	}
}

func TestQueueExprs(t *testing.T) {
	p := nftPath{key: "b/to_host", link: "b", dir: ToHost, queue: true}
	native := (&nftRules{queueNum: 3, flavour: queueNative}).queueExprs(p, true)
	if q := native[3].(*expr.Queue); q.Num != 3 || q.Total != 1 || q.Flag != expr.QueueFlagBypass {
		t.Errorf("native queue %+v", q)
	}
	compat := (&nftRules{queueNum: 3, flavour: queueXT}).queueExprs(p, false)
	tg := compat[2].(*expr.Target)
	info := *tg.Info.(*xt.Unknown)
	if tg.Name != "NFQUEUE" || tg.Rev != 3 || len(info) != 8 || binary.NativeEndian.Uint16(info) != 3 ||
		binary.NativeEndian.Uint16(info[2:]) != 1 || binary.NativeEndian.Uint16(info[4:]) != nfqBypass {
		t.Errorf("xt NFQUEUE target %s rev %d info %v", tg.Name, tg.Rev, info)
	}
}
