package capture

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faultlab/faultlab/harness"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/bpf"
)

// CaptureStats is what one capture saw and wrote; it is also written next to the pcap file
// (<name>.capture.json). Drops are never hidden: a capture with Dropped > 0 is missing packets.
type CaptureStats struct {
	Host    string `json:"host"`
	Iface   string `json:"iface"`
	File    string `json:"file"`
	Engine  string `json:"engine"`
	Snaplen int    `json:"snaplen"`
	Filter  string `json:"filter,omitempty"`
	// Fallback says why the pcapgo engine replaced afpacket.
	Fallback string    `json:"fallback,omitempty"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	// Received counts packets the kernel passed to the socket (drops included); Dropped those the ring or
	// socket had no room for; QueueFreezes the times the TPACKET_V3 ring filled up.
	Received     uint64 `json:"received"`
	Dropped      uint64 `json:"dropped"`
	QueueFreezes uint64 `json:"queue_freezes"`
	// Written counts records in the file, Bytes their captured bytes; Early counts packets discarded
	// because they arrived before the filter was in place.
	Written uint64 `json:"written"`
	Bytes   uint64 `json:"bytes"`
	Early   uint64 `json:"early"`
	Error   string `json:"error,omitempty"`
}

// Capture is a running packet capture of one link, written to one pcap file.
type Capture struct {
	host harness.NetnsHost
	cfg  LinkCapture
	path string

	mu        sync.Mutex
	stats     CaptureStats
	src       source
	file      *os.File
	buf       *bufio.Writer
	w         *pcapgo.Writer
	stopping  atomic.Bool
	stopAt    atomic.Int64 // unix ns when the drop-all filter went in
	written   atomic.Uint64
	bytes     atomic.Uint64
	early     atomic.Uint64
	done      chan struct{}
	stopOnce  sync.Once
	stopErr   error
	runErr    error
	filterErr error
}

var _ Probe = (*Capture)(nil)

// NewCapture prepares a capture of cfg.Iface inside h's namespace into the pcap file at path.
func NewCapture(h harness.NetnsHost, cfg LinkCapture, path string) (*Capture, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Capture{host: h, cfg: cfg, path: path, stats: CaptureStats{Host: h.Name(), Iface: cfg.Iface,
		File: path, Snaplen: cfg.Snaplen, Filter: cfg.Filter}}, nil
}

// Path is the pcap file's path.
func (c *Capture) Path() string { return c.path }

// StatsPath is the path of the stats file written at Stop.
func (c *Capture) StatsPath() string { return strings.TrimSuffix(c.path, ".pcap") + ".capture.json" }

// Start opens the packet socket inside the namespace, attaches the filter and starts writing. Capture
// stops when ctx ends or Stop is called; Stop must be called either way to flush the file.
func (c *Capture) Start(ctx context.Context) error {
	if c.done != nil {
		return fmt.Errorf("capture %s/%s: already started", c.host.Name(), c.cfg.Iface)
	}
	if err := c.open(); err != nil {
		return fmt.Errorf("capture %s/%s: %w", c.host.Name(), c.cfg.Iface, err)
	}
	c.done = make(chan struct{})
	go c.run()
	go func() {
		select {
		case <-ctx.Done():
			c.beginStop()
		case <-c.done:
		}
	}()
	return nil
}

// open creates the socket in the namespace, the filter and the file.
func (c *Capture) open() (err error) {
	var lt layers.LinkType
	err = inLab(c.host, "capture", func() error {
		if lt, err = linkTypeOf(c.cfg.Iface); err != nil {
			return err
		}
		c.src, c.stats.Engine, c.stats.Fallback, err = openSource(c.cfg)
		return err
	})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			c.src.close()
		}
	}()
	prog := retConst(uint32(c.cfg.Snaplen)) // keep snaplen bytes of every packet
	if c.cfg.Filter != "" {
		if prog, err = compileFilter(lt, c.cfg.Snaplen, c.cfg.Filter); err != nil {
			return err
		}
	}
	if err := c.src.setFilter(prog); err != nil {
		return fmt.Errorf("attach filter: %w", err)
	}
	c.stats.Start = time.Now() // packets stamped earlier may have bypassed the filter
	if c.file, err = os.Create(c.path); err != nil {
		return err
	}
	c.buf = bufio.NewWriterSize(c.file, 1<<20)
	c.w = pcapgo.NewWriterNanos(c.buf)
	if err := c.w.WriteFileHeader(uint32(c.cfg.Snaplen), lt); err != nil {
		c.file.Close()
		return fmt.Errorf("write pcap header: %w", err)
	}
	return nil
}

// openSource opens the configured engine, falling back from afpacket to pcapgo when the ring cannot be set
// up and no engine was asked for explicitly. It runs inside the namespace.
func openSource(cfg LinkCapture) (source, string, string, error) {
	if cfg.Engine == EnginePcapgo {
		s, err := openPcapgo(cfg.Iface, cfg.Snaplen)
		return s, EnginePcapgo, "", err
	}
	s, err := openAFPacket(cfg.Iface, cfg.RingBytes)
	if err == nil || cfg.Engine == EngineAFPacket {
		return s, EngineAFPacket, "", err
	}
	s, err2 := openPcapgo(cfg.Iface, cfg.Snaplen)
	return s, EnginePcapgo, err.Error(), err2
}

// drainMax bounds the drain at Stop: a capture whose filter could not be swapped may never see its socket
// go quiet. Whatever the kernel still delivers after that shows as Received > Written in the stats.
const drainMax = 2 * time.Second

// run copies packets from the socket to the file until stopped and drained.
func (c *Capture) run() {
	defer close(c.done)
	snap := c.cfg.Snaplen
	start := c.stats.Start
	for {
		// The clock is read only once a stop has begun: a read per packet cost a third of the loop's time
		// (profile in docs/performance.md). A poll that began before the stop cannot show the drain.
		var polled int64
		if at := c.stopAt.Load(); at != 0 {
			if polled = time.Now().UnixNano(); polled > at+int64(drainMax) {
				return
			}
		}
		data, ci, err := c.src.read()
		if errors.Is(err, errNoPacket) {
			// Drained once a whole poll that began after the drop-all filter (and a block retirement) is empty.
			if at := c.stopAt.Load(); at != 0 && polled != 0 && polled > at+int64(blockTimeout) {
				return
			}
			continue
		}
		if err != nil {
			if !c.stopping.Load() {
				c.runErr = fmt.Errorf("read packet: %w", err)
			}
			return
		}
		if ci.Timestamp.Before(start) {
			c.early.Add(1)
			continue
		}
		if len(data) > snap {
			data, ci.CaptureLength = data[:snap], snap
		}
		if err := c.w.WritePacket(ci, data); err != nil {
			c.runErr = fmt.Errorf("write packet: %w", err)
			return
		}
		c.written.Add(1)
		c.bytes.Add(uint64(len(data)))
	}
}

// beginStop lets no more packets into the socket; run then drains what is queued and returns.
func (c *Capture) beginStop() {
	if c.stopping.Swap(true) {
		return
	}
	c.filterErr = c.src.setFilter(retConst(0)) // drop everything
	c.stopAt.Store(time.Now().UnixNano())
	if _, ok := c.src.(*pcapgoSource); ok {
		// Its netpoller read never times out: give queued packets a moment, then close the socket under it.
		// (The afpacket ring must not be unmapped while run may read it: run returns by itself.)
		time.AfterFunc(200*time.Millisecond, func() { c.src.close() })
	}
}

// Stop stops the capture, flushes and closes the file, and writes the stats file. It is idempotent; a
// capture that never started returns nil.
func (c *Capture) Stop() error {
	if c.done == nil {
		return nil
	}
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *Capture) stop() error {
	c.beginStop()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	if c.runErr != nil {
		errs = append(errs, c.runErr)
	}
	if c.filterErr != nil {
		errs = append(errs, fmt.Errorf("swap in the drop-all filter: %w", c.filterErr))
	}
	var err error
	c.stats.Received, c.stats.Dropped, c.stats.QueueFreezes, err = c.src.counters()
	if err != nil {
		errs = append(errs, fmt.Errorf("read socket counters: %w", err))
	}
	c.stats.End = time.Now()
	c.stats.Written, c.stats.Bytes, c.stats.Early = c.written.Load(), c.bytes.Load(), c.early.Load()
	errs = append(errs, c.src.close(), c.buf.Flush(), c.file.Close())
	if err := errors.Join(errs...); err != nil {
		c.stats.Error = err.Error()
	}
	errs = append(errs, writeJSON(c.StatsPath(), c.stats))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop capture %s/%s: %w", c.host.Name(), c.cfg.Iface, err)
	}
	return nil
}

// Stats returns the capture's counters; final after Stop.
func (c *Capture) Stats() CaptureStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats
	st.Written, st.Bytes, st.Early = c.written.Load(), c.bytes.Load(), c.early.Load()
	return st
}

// retConst is the classic BPF program "ret #n": accept n bytes of every packet (0: drop it).
func retConst(n uint32) []bpf.RawInstruction {
	prog, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: n}})
	if err != nil {
		panic(err) // a constant program always assembles
	}
	return prog
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
