package impair

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// queueFlavour is how a rule hands packets to NFQUEUE: nftables' own queue expression (module nft_queue)
// or, where that is absent (as on the lab machines), the xtables NFQUEUE target through nft_compat, which
// is what iptables-nft emits for -j NFQUEUE --queue-bypass.
type queueFlavour string

const (
	queueNative queueFlavour = "nft queue"
	queueXT     queueFlavour = "xt NFQUEUE"
)

// nfqBypass is NFQ_FLAG_BYPASS of struct xt_NFQ_info_v3.
const nfqBypass = 0x01

// nftPath is one impaired direction of a link as the forward hook sees it.
type nftPath struct {
	key   string // counter names derive from it
	link  string // router-side link name
	dir   Direction
	loss  float64 // independent loss, dropped by the rule
	queue bool    // held by the program (delay, jitter or burst loss)
}

// nftRules is the userspace engine's nftables table in the router namespace: table ip <prefix>-impair with
// one forward chain: first a loss rule per direction with loss, then a queue rule per direction the
// program holds. Counters are named objects, so rebuilding the rules keeps them.
type nftRules struct {
	conn     *nftables.Conn
	table    *nftables.Table
	chain    *nftables.Chain
	queueNum uint16
	flavour  queueFlavour
	counters map[string]counterID // by counter name
}

// counterID says what a named counter counts: kind "loss" or "queue", for a path key.
type counterID struct{ kind, key string }

// openNFT creates the table and its forward chain and finds which queue flavour the kernel takes.
func openNFT(nsFD int, name string, queueNum uint16) (*nftRules, error) {
	return openNFTHook(nsFD, name, queueNum, "forward", nftables.ChainHookForward)
}

// openNFTHook is openNFT with a chain of another name and hook (a gate's input chain).
func openNFTHook(nsFD int, name string, queueNum uint16, chain string, hook *nftables.ChainHook) (*nftRules, error) {
	conn, err := nftables.New(nftables.WithNetNSFd(nsFD), nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("nftables in router: %w", err)
	}
	n := &nftRules{conn: conn, queueNum: queueNum, counters: map[string]counterID{},
		table: &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}}
	n.chain = &nftables.Chain{Name: chain, Table: n.table, Type: nftables.ChainTypeFilter,
		Hooknum: hook, Priority: nftables.ChainPriorityFilter}
	conn.AddTable(n.table)
	conn.AddChain(n.chain)
	if err := conn.Flush(); err != nil {
		return nil, fmt.Errorf("add nft table %s: %w", name, err)
	}
	for _, f := range []queueFlavour{queueNative, queueXT} {
		n.flavour = f
		probe := nftPath{link: "flprobe-none", dir: ToHost, queue: true}
		conn.AddRule(&nftables.Rule{Table: n.table, Chain: n.chain, Exprs: n.queueExprs(probe, false)})
		if err = conn.Flush(); err == nil {
			conn.FlushChain(n.chain)
			if err := conn.Flush(); err != nil {
				return n, fmt.Errorf("flush nft chain: %w", err)
			}
			return n, nil
		}
	}
	return n, fmt.Errorf("add nft queue rule (tried nft_queue and xt NFQUEUE): %w", err)
}

// sync replaces the chain's rules with those for paths, in one transaction.
func (n *nftRules) sync(paths []nftPath) error {
	sort.Slice(paths, func(i, j int) bool { return paths[i].key < paths[j].key })
	n.conn.FlushChain(n.chain)
	for _, p := range paths {
		if p.loss > 0 {
			n.ensureCounter("loss", p.key)
			n.conn.AddRule(&nftables.Rule{Table: n.table, Chain: n.chain, Exprs: lossExprs(p)})
		}
	}
	for _, p := range paths {
		if p.queue {
			n.ensureCounter("queue", p.key)
			n.conn.AddRule(&nftables.Rule{Table: n.table, Chain: n.chain, Exprs: n.queueExprs(p, true)})
		}
	}
	if err := n.conn.Flush(); err != nil {
		n.counters = map[string]counterID{} // the transaction created none; re-adding an existing one is a no-op
		return fmt.Errorf("update nft rules in %s: %w", n.table.Name, err)
	}
	return nil
}

func (n *nftRules) ensureCounter(kind, key string) {
	name := counterName(kind, key)
	if _, ok := n.counters[name]; ok {
		return
	}
	n.counters[name] = counterID{kind, key}
	n.conn.AddObj(&nftables.NamedObj{Table: n.table, Name: name, Type: nftables.ObjTypeCounter,
		Obj: &expr.Counter{}})
}

// readCounters returns the packet count of every named counter.
func (n *nftRules) readCounters() (map[counterID]uint64, error) {
	objs, err := n.conn.GetNamedObjects(n.table)
	if err != nil {
		return nil, fmt.Errorf("read nft counters: %w", err)
	}
	out := map[counterID]uint64{}
	for _, o := range objs {
		no, ok := o.(*nftables.NamedObj)
		if !ok {
			continue
		}
		c, ok := no.Obj.(*expr.Counter)
		if id, known := n.counters[no.Name]; ok && known {
			out[id] = c.Packets
		}
	}
	return out, nil
}

// close deletes the table (rules, chain and counters; an absent table is fine) and the connection.
func (n *nftRules) close() error {
	n.conn.DelTable(n.table)
	var errs []error
	if err := n.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		errs = append(errs, fmt.Errorf("delete nft table %s: %w", n.table.Name, err))
	}
	if err := n.conn.CloseLasting(); err != nil {
		errs = append(errs, fmt.Errorf("close nftables connection: %w", err))
	}
	return errors.Join(errs...)
}

// counterName is the named counter of a rule kind (loss, queue) for a path key such as "a/to_host".
func counterName(kind, key string) string { return kind + "_" + strings.ReplaceAll(key, "/", "_") }

// ifMatch is "iifname X" for from_host (the packet came in from the host) or "oifname X" for to_host.
func ifMatch(p nftPath) []expr.Any {
	key := expr.MetaKeyOIFNAME
	if p.dir == FromHost {
		key = expr.MetaKeyIIFNAME
	}
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, p.link)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
	}
}

// lossExprs is `ifname X numgen random mod 1000000 < K counter name loss_X_dir drop`; as nft itself does,
// the number is turned big-endian before the comparison (cmp compares bytes).
func lossExprs(p nftPath) []expr.Any {
	return append(ifMatch(p),
		&expr.Numgen{Register: 1, Modulus: lossModulus, Type: unix.NFT_NG_RANDOM},
		&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
		&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: binary.BigEndian.AppendUint32(nil, lossThreshold(p.loss))},
		&expr.Objref{Type: unix.NFT_OBJECT_COUNTER, Name: counterName("loss", p.key)},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)
}

// queueExprs is `ifname X counter name queue_X_dir queue num N bypass` in the engine's flavour.
func (n *nftRules) queueExprs(p nftPath, counted bool) []expr.Any {
	e := ifMatch(p)
	if counted {
		e = append(e, &expr.Objref{Type: unix.NFT_OBJECT_COUNTER, Name: counterName("queue", p.key)})
	}
	return n.queueTo(e)
}

// queueTo appends `queue num N bypass`, in the engine's flavour, to a rule's match.
func (n *nftRules) queueTo(e []expr.Any) []expr.Any {
	if n.flavour == queueNative {
		return append(e, &expr.Queue{Num: n.queueNum, Total: 1, Flag: expr.QueueFlagBypass})
	}
	info := make(xt.Unknown, 8) // struct xt_NFQ_info_v3 {u16 queuenum, queues_total, flags}, aligned to 8
	binary.NativeEndian.PutUint16(info[0:], n.queueNum)
	binary.NativeEndian.PutUint16(info[2:], 1)
	binary.NativeEndian.PutUint16(info[4:], nfqBypass)
	return append(e, &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info})
}
