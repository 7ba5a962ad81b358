package capture

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzAnalyse feeds the analyser damaged captures: it must return an error or a consistent result, never
// panic, and its result must always serialise.
//
//	go test ./capture -run '^$' -fuzz FuzzAnalyse -fuzztime 60s
func FuzzAnalyse(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.pcap"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	s := newSynth(f)
	s.vlan = true
	s.exchange(f, 0, cliAP, srvAP, 1, 1)
	f.Add(s.bytes())
	f.Add([]byte{0x0A, 0x0D, 0x0D, 0x0A, 0x1C, 0, 0, 0, 0x4D, 0x3C, 0x2B, 0x1A}) // a pcapng section header start
	f.Add([]byte{0x1F, 0x8B})                                                    // gzip magic
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Analyse(bytes.NewReader(data), Options{Roles: fixtureRoles, KeepConns: true,
			Window: 10 * time.Millisecond, ClosedLinger: time.Millisecond, ConnIdle: time.Second})
		if res == nil {
			if err == nil {
				t.Fatal("no result and no error")
			}
			return
		}
		if res.Records != res.TCP+res.Other+res.Malformed {
			t.Errorf("records %d != tcp %d + other %d + malformed %d", res.Records, res.TCP, res.Other, res.Malformed)
		}
		if total := res.Total(nil); total.Packets != res.TCP {
			t.Errorf("directions hold %d packets, %d TCP", total.Packets, res.TCP)
		}
		if _, err := json.Marshal(res); err != nil {
			t.Errorf("marshal result: %v", err)
		}
	})
}
