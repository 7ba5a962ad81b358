package results

import (
	"strings"
	"testing"
	"time"
)

// specExpectation mirrors harness/spec.Expectation (which results must not import): it must convert.
type specExpectation struct {
	Cell              string        `yaml:"cell"`
	Failures          string        `yaml:"failures"`
	BetterThan        string        `yaml:"better_than"`
	FewerResetsThan   string        `yaml:"fewer_resets_than"`
	ConnectP99AtLeast time.Duration `yaml:"connect_p99_at_least"`
	Alpha             float64       `yaml:"alpha"`
}

var _ = Expectation(specExpectation{})

// fakeCell is a CellStats with reload windows and the given counts.
func fakeCell(name string, attempts, failures, resets, windows, bad, resetWindows int, p99 time.Duration) *CellStats {
	return &CellStats{Cell: name, Attempts: attempts, OK: attempts - failures, Failures: failures, Resets: resets,
		WindowKind: WindowReload, Windows: windows, BadWindows: bad, ResetWindows: resetWindows,
		Reloads: windows, RateCI: Interval{0, ClopperPearson(0, max(attempts, 1), 0.95).Hi},
		Connect: Quantiles{N: attempts - failures, P50: time.Millisecond, P99: p99, Max: 2 * p99}}
}

func testCells() map[string]*CellStats {
	return map[string]*CellStats{
		"legacy":  fakeCell("legacy", 41200, 3100, 3000, 80, 23, 22, 2*time.Millisecond),
		"xmw":     fakeCell("xmw", 41200, 0, 0, 80, 0, 0, 2*time.Millisecond),
		"slight":  fakeCell("slight", 41200, 2000, 2000, 80, 20, 20, 2*time.Millisecond),
		"syndrop": fakeCell("syndrop", 41200, 40, 0, 80, 3, 0, 3100*time.Millisecond),
	}
}

func TestCompare(t *testing.T) {
	cells := testCells()
	c := Compare(cells["xmw"], cells["legacy"])
	approx(t, "p", c.PValue, FisherLess(0, 80, 23, 80), 0)
	approx(t, "per-connection p", c.PerConnectionP, FisherLess(0, 41200, 3100, 41200), 0)
	if c.A != "xmw" || c.B != "legacy" || c.ABad != 0 || c.BWindows != 80 || !strings.Contains(c.Method, "window") {
		t.Errorf("Compare = %+v", c)
	}
	if c := Compare(nil, cells["legacy"]); c.PValue != 1 {
		t.Errorf("Compare(nil, legacy).PValue = %g, want 1", c.PValue)
	}
	all := CompareAll([]*CellStats{cells["legacy"], cells["xmw"], cells["slight"]}, "legacy")
	if len(all) != 2 || all[0].A != "xmw" || all[1].A != "slight" {
		t.Errorf("CompareAll = %+v", all)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name       string
		exp        Expectation
		wantPass   []bool
		wantDetail string // substring of the first verdict's detail
		wantAlarm  string // substring of the first verdict's false-alarm sentence
	}{
		{"some_failures", Expectation{Cell: "legacy", Failures: "some"}, []bool{true}, "3,100 failures in 41,200",
			"observed count"},
		{"none_holds", Expectation{Cell: "xmw", Failures: "none"}, []bool{true}, "0/80 bad reloads (rate <",
			"does not prove"},
		{"none_fails", Expectation{Cell: "syndrop", Failures: "none"}, []bool{false}, "40 failures", "observed"},
		{"some_fails", Expectation{Cell: "xmw", Failures: "some"}, []bool{false}, "0 failures", "observed"},
		{"unknown_failures_value", Expectation{Cell: "xmw", Failures: "few"}, []bool{false}, "unknown value", ""},
		{"better_than_significant", Expectation{Cell: "xmw", BetterThan: "legacy"}, []bool{true},
			"vs legacy 23/80 bad reloads, Fisher one-sided p=1.9e-08 < 0.01", "at most 1% of the time"},
		{"better_than_not_significant", Expectation{Cell: "slight", BetterThan: "legacy"}, []bool{false},
			"≥ 0.01", "alpha=0.01"},
		{"better_than_custom_alpha", Expectation{Cell: "slight", BetterThan: "legacy", Alpha: 0.5},
			[]bool{true}, "< 0.5", "at most 50%"},
		{"fewer_resets", Expectation{Cell: "syndrop", FewerResetsThan: "legacy"}, []bool{true},
			"0/80 windows with resets", "reset windows"},
		{"connect_p99_holds", Expectation{Cell: "syndrop", ConnectP99AtLeast: time.Second}, []bool{true},
			"p99 connect 3.10s", "not a test"},
		{"connect_p99_fails", Expectation{Cell: "xmw", ConnectP99AtLeast: time.Second}, []bool{false},
			"p99 connect 2.00ms", "not a test"},
		{"missing_cell", Expectation{Cell: "nope", Failures: "none"}, []bool{false}, `"nope" is not in`, ""},
		{"missing_other_cell", Expectation{Cell: "xmw", BetterThan: "nope"}, []bool{false}, `"nope"`, ""},
		{"two_claims", Expectation{Cell: "xmw", Failures: "none", BetterThan: "legacy"}, []bool{true, true},
			"0 failures", ""},
		{"no_claim", Expectation{Cell: "xmw"}, []bool{false}, "no claim", ""},
	}
	cells := testCells()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vs := Check([]Expectation{tc.exp}, cells)
			if len(vs) != len(tc.wantPass) {
				t.Fatalf("got %d verdicts %+v, want %d", len(vs), vs, len(tc.wantPass))
			}
			for i, v := range vs {
				if v.Pass != tc.wantPass[i] || v.Cell != tc.exp.Cell || v.Claim == "" {
					t.Errorf("verdict %d = %+v, want pass=%v", i, v, tc.wantPass[i])
				}
			}
			if !strings.Contains(vs[0].Detail, tc.wantDetail) {
				t.Errorf("detail %q, want it to contain %q", vs[0].Detail, tc.wantDetail)
			}
			if !strings.Contains(vs[0].FalseAlarm, tc.wantAlarm) {
				t.Errorf("false alarm %q, want it to contain %q", vs[0].FalseAlarm, tc.wantAlarm)
			}
		})
	}
}

func TestFormatters(t *testing.T) {
	tests := []struct{ name, got, want string }{
		{"commas_small", commas(999), "999"},
		{"commas_thousands", commas(41200), "41,200"},
		{"commas_millions", commas(-1234567), "-1,234,567"},
		{"dur_ns", fmtDur(850), "850ns"},
		{"dur_us", fmtDur(12345 * time.Nanosecond), "12.3µs"},
		{"dur_ms", fmtDur(1234567 * time.Nanosecond), "1.23ms"},
		{"dur_s", fmtDur(3010 * time.Millisecond), "3.01s"},
		{"dur_long", fmtDur(125 * time.Second), "125s"},
		{"p_small", fmtP(3.14159e-8), "3.1e-08"},
		{"p_plain", fmtP(0.04567), "0.046"},
		{"p_underflow", fmtP(0), "<1e-300"},
		{"pct", fmtPct(0.00757), "0.757%"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}
