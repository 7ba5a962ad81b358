package capture

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/afpacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/bpf"
)

// Capture engines.
const (
	EngineAFPacket = "afpacket" // gopacket afpacket, TPACKET_V3 ring (the default)
	EnginePcapgo   = "pcapgo"   // gopacket pcapgo: pure Go, one recvmsg per packet (the fallback)
)

// errNoPacket is a source's poll timeout: nothing arrived, try again.
var errNoPacket = errors.New("no packet within the poll timeout")

// source is an open packet socket bound to one interface.
type source interface {
	read() ([]byte, gopacket.CaptureInfo, error)
	setFilter(prog []bpf.RawInstruction) error
	// counters returns what the kernel counted since the socket opened: packets passed by the filter
	// (drops included), drops for lack of room, and ring freezes.
	counters() (received, dropped, freezes uint64, err error)
	close() error
}

const (
	blockSize    = 1 << 20
	blockTimeout = 10 * time.Millisecond
	pollTimeout  = 100 * time.Millisecond
)

// linkTypeOf returns the pcap link type of an interface (called inside the namespace): Ethernet for
// interfaces with a 6-byte hardware address (veth, loopback), raw IP for the rest (tunnels).
func linkTypeOf(iface string) (layers.LinkType, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return 0, fmt.Errorf("interface %s: %w", iface, err)
	}
	if len(ifi.HardwareAddr) == 6 {
		return layers.LinkTypeEthernet, nil
	}
	return layers.LinkTypeRaw, nil
}

// afpacketSource reads a TPACKET_V3 ring.
type afpacketSource struct {
	tp   *afpacket.TPacket
	once sync.Once
}

// openAFPacket opens the ring; it must run on a thread inside the interface's namespace.
func openAFPacket(iface string, ringBytes int) (source, error) {
	opts := []any{afpacket.OptInterface(iface), afpacket.TPacketVersion3,
		afpacket.OptBlockSize(blockSize), afpacket.OptNumBlocks(max(ringBytes/blockSize, 2)),
		afpacket.OptBlockTimeout(blockTimeout), afpacket.OptPollTimeout(pollTimeout)}
	tp, err := afpacket.NewTPacket(opts...)
	if err != nil {
		return nil, fmt.Errorf("open afpacket ring on %s: %w", iface, err)
	}
	return &afpacketSource{tp: tp}, nil
}

func (s *afpacketSource) read() ([]byte, gopacket.CaptureInfo, error) {
	data, ci, err := s.tp.ZeroCopyReadPacketData()
	if errors.Is(err, afpacket.ErrTimeout) {
		return nil, ci, errNoPacket
	}
	return data, ci, err
}

func (s *afpacketSource) setFilter(prog []bpf.RawInstruction) error { return s.tp.SetBPF(prog) }

func (s *afpacketSource) counters() (uint64, uint64, uint64, error) {
	_, v3, err := s.tp.SocketStats()
	if err != nil {
		return 0, 0, 0, err
	}
	return uint64(v3.Packets()), uint64(v3.Drops()), uint64(v3.QueueFreezes()), nil
}

func (s *afpacketSource) close() error {
	s.once.Do(s.tp.Close)
	return nil
}

// pcapgoSource reads a plain AF_PACKET socket through the netpoller.
type pcapgoSource struct {
	h                 *pcapgo.EthernetHandle
	mu                sync.Mutex
	received, dropped uint64
	closed            bool
	once              sync.Once
	closeErr          error
}

// openPcapgo opens the socket; it must run on a thread inside the interface's namespace.
func openPcapgo(iface string, snaplen int) (source, error) {
	h, err := pcapgo.NewEthernetHandle(iface)
	if err != nil {
		return nil, fmt.Errorf("open pcapgo socket on %s: %w", iface, err)
	}
	if err := h.SetCaptureLength(snaplen); err != nil {
		h.Close()
		return nil, err
	}
	return &pcapgoSource{h: h}, nil
}

func (s *pcapgoSource) read() ([]byte, gopacket.CaptureInfo, error) {
	return s.h.ZeroCopyReadPacketData()
}

func (s *pcapgoSource) setFilter(prog []bpf.RawInstruction) error { return s.h.SetBPF(prog) }

// counters accumulates: the kernel resets its counters on every read. After close they are the last ones
// read before the socket closed.
func (s *pcapgoSource) counters() (uint64, uint64, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.received, s.dropped, 0, nil
	}
	st, err := s.h.Stats()
	if err != nil {
		return 0, 0, 0, err
	}
	s.received += uint64(st.Packets)
	s.dropped += uint64(st.Drops)
	return s.received, s.dropped, 0, nil
}

func (s *pcapgoSource) close() error {
	s.once.Do(func() {
		_, _, _, err := s.counters()
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.closeErr = errors.Join(err, s.h.Close())
	})
	return s.closeErr
}
