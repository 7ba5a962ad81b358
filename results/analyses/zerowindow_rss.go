package analyses

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/faultlab/faultlab/capture"
)

// ProxyRSS is the memory of the proxy the clients download through, from its procs probe: the resident
// set of all its processes together, per sample. It is the cost of bigger buffers.
type ProxyRSS struct {
	Service string `json:"service"`
	Samples int    `json:"samples"`
	// Peak is the largest sum over a sample; Mean the mean of the sums.
	Peak int64 `json:"peak_bytes"`
	Mean int64 `json:"mean_bytes"`
}

// proxyRSS reads procs-<target>.jsonl, the workload target's process series (nil when the cell has none).
func proxyRSS(in *Input) (*ProxyRSS, error) {
	name := in.Cell.Scenario.Workload.Target
	r := &ProxyRSS{Service: name}
	var sum int64
	err := eachLine(filepath.Join(in.Dir, "procs-"+name+".jsonl"), func(b []byte) error {
		var s capture.ProcSample
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		var rss int64
		for _, p := range s.PIDs {
			rss += p.RSS
		}
		r.Samples++
		r.Peak = max(r.Peak, rss)
		sum += rss
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read procs-%s.jsonl: %w", name, err)
	}
	if r.Samples > 0 {
		r.Mean = sum / int64(r.Samples)
	}
	return r, nil
}
