package loadgen

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/faultlab/faultlab/results"
)

// Download fetches one file per attempt, on a new connection: GET /f/<size> HTTP/1.0, read to EOF, close
// (the zero-window family: seeds/003). The file is drawn from Sizes by the attempt's sequence number, so a
// run's mix is the same every time and needs no shared random source. nginx's files option serves /f/<size>
// (harness/services); a size it does not serve is a 404, recorded as a proto_error.
type Download struct {
	Host  string
	Sizes []SizeShare
}

// SizeShare is one file of a download mix and the share of downloads that fetch it.
type SizeShare struct {
	Name  string  // as in nginx's files option: bytes with an optional k or m suffix, e.g. "70k"
	Share float64 // in (0, 1]; a mix's shares add up to 1
}

var _ Workload = Download{}

// sizeName is the grammar of a file size (services.ParseSize bounds its value).
var sizeName = regexp.MustCompile(`^[1-9][0-9]{0,9}[kKmM]?$`)

func newDownload(cfg WorkloadConfig) (Workload, error) {
	if err := checkWorkloadOptions("download", cfg.Options, "host", "sizes"); err != nil {
		return nil, err
	}
	if cfg.Persistent != 0 {
		return nil, fmt.Errorf("download: persistent %d: HTTP/1.0 closes the connection after each response, "+
			"so it has no persistent connections", cfg.Persistent)
	}
	mix, err := ParseSizeMix(cfg.Options["sizes"])
	if err != nil {
		return nil, fmt.Errorf("download: option sizes: %w", err)
	}
	return Download{Host: cfg.Options["host"], Sizes: mix}, nil
}

// ParseSizeMix parses a mix "70k:0.5,1m:0.5": files and their shares, which must add up to 1 (within
// 1e-6). A single file may omit its share ("1m").
func ParseSizeMix(s string) ([]SizeShare, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf(`missing: give the files and their shares, e.g. "16k:0.5,1m:0.5"`)
	}
	var mix []SizeShare
	sum := 0.0
	for _, part := range strings.Split(s, ",") {
		ss, err := parseSizeShare(strings.TrimSpace(part), !strings.Contains(s, ","))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		for _, m := range mix {
			if m.Name == ss.Name {
				return nil, fmt.Errorf("%q: %s is listed twice", s, ss.Name)
			}
		}
		mix = append(mix, ss)
		sum += ss.Share
	}
	if math.Abs(sum-1) > 1e-6 {
		return nil, fmt.Errorf("%q: the shares add up to %g, want 1", s, sum)
	}
	return mix, nil
}

// parseSizeShare parses "70k:0.5" (or "70k" alone when single).
func parseSizeShare(part string, single bool) (SizeShare, error) {
	name, share, hasShare := strings.Cut(part, ":")
	name = strings.TrimSpace(name)
	if !sizeName.MatchString(name) {
		return SizeShare{}, fmt.Errorf("size %q: want a number of bytes with an optional k or m suffix "+
			"(e.g. 700, 16k, 4m)", name)
	}
	if !hasShare {
		if !single {
			return SizeShare{}, fmt.Errorf("%s has no share: write it as %s:<share in (0,1]>", name, name)
		}
		return SizeShare{Name: name, Share: 1}, nil
	}
	p, err := strconv.ParseFloat(strings.TrimSpace(share), 64)
	if err != nil || !(p > 0 && p <= 1) {
		return SizeShare{}, fmt.Errorf("share of %s %q: want a number in (0, 1]", name, share)
	}
	return SizeShare{Name: name, Share: p}, nil
}

// Attempt downloads the file the attempt's sequence number draws and fills rec.
func (d Download) Attempt(ctx context.Context, dl *Dialer, dst netip.AddrPort, rec *results.Record) {
	HTTP10{Host: d.Host, Path: "/f/" + d.Pick(rec.Seq)}.Attempt(ctx, dl, dst, rec)
}

// Pick is the file of attempt seq: a uniform draw from the attempt's number (splitmix64) mapped onto the
// shares in order.
func (d Download) Pick(seq uint64) string {
	u := float64(splitmix64(seq)>>11) / (1 << 53)
	for _, s := range d.Sizes {
		if u < s.Share {
			return s.Name
		}
		u -= s.Share
	}
	return d.Sizes[len(d.Sizes)-1].Name
}

// splitmix64 is a bijective 64-bit mixer (Steele, Lea and Flood 2014): consecutive inputs give
// uncorrelated, uniform outputs.
func splitmix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}
