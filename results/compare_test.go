package results

import (
	"strings"
	"testing"
	"time"
)

// specExpectation mirrors harness/spec.Expectation (which results must not import): it must convert.
type specExpectation struct {
	Cell               string        `yaml:"cell"`
	Failures           string        `yaml:"failures"`
	Resets             string        `yaml:"resets"`
	BetterThan         string        `yaml:"better_than"`
	FewerResetsThan    string        `yaml:"fewer_resets_than"`
	ConnectP99AtLeast  time.Duration `yaml:"connect_p99_at_least"`
	Alpha              float64       `yaml:"alpha"`
	MinReloads         int           `yaml:"min_reloads"`
	AcceptInconclusive bool          `yaml:"accept_inconclusive"`
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
	const (
		H = StatusHolds
		F = StatusFails
		I = StatusInconclusive
		V = StatusVoid
	)
	tests := []struct {
		name       string
		exp        Expectation
		want       []Status
		wantDetail string // substring of the first verdict's detail
		wantAlarm  string // substring of the first verdict's false-alarm sentence
	}{
		{"some_failures", Expectation{Cell: "legacy", Failures: "some"}, []Status{H}, "3,100 failures in 41,200",
			"observed count"},
		{"none_holds", Expectation{Cell: "xmw", Failures: "none"}, []Status{H}, "0/80 bad reloads (rate <",
			"does not prove"},
		{"none_fails", Expectation{Cell: "syndrop", Failures: "none"}, []Status{F}, "40 failures", "observed"},
		// resets: the reload pathology's signature, apart from timeouts (syndrop has 40 failures, no resets)
		{"resets_none_holds", Expectation{Cell: "syndrop", Resets: "none"}, []Status{H},
			"0 resets or refusals in 41,200 attempts (40 failures in all)", "timeouts are not counted"},
		{"resets_none_fails", Expectation{Cell: "legacy", Resets: "none"}, []Status{F}, "3,000 resets or refusals",
			"observed"},
		{"resets_some_holds", Expectation{Cell: "legacy", Resets: "some"}, []Status{H}, "3,000 resets", "observed"},
		{"resets_some_inconclusive", Expectation{Cell: "xmw", Resets: "some"}, []Status{I}, "may be rarer", "observed"},
		{"resets_bad_value", Expectation{Cell: "xmw", Resets: "few"}, []Status{F}, "unknown value", ""},
		// no failure seen is not evidence against the pathology: inconclusive, with the bound it leaves
		{"some_inconclusive", Expectation{Cell: "xmw", Failures: "some"}, []Status{I},
			"no failure in 41,200 attempts and 80 reloads; the bad-window fraction is below 4.51% at 95%",
			"observed"},
		{"unknown_failures_value", Expectation{Cell: "xmw", Failures: "few"}, []Status{F}, "unknown value", ""},
		{"better_than_significant", Expectation{Cell: "xmw", BetterThan: "legacy"}, []Status{H},
			"vs legacy 23/80 bad reloads; exact stratified test on bad windows over 1 round: p=1.9e-08 < 0.01, " +
				"its Holm threshold (rank 1 of 1 p-value claim)", "at most 1% of the time"},
		// 20/80 vs 23/80: neither direction is significant, and the verdict says how much more would decide
		{"better_than_not_significant", Expectation{Cell: "slight", BetterThan: "legacy"}, []Status{I},
			"not enough evidence either way; at the observed rates", "alpha=0.01"},
		{"better_than_custom_alpha", Expectation{Cell: "slight", BetterThan: "legacy", Alpha: 0.5},
			[]Status{H}, "< 0.5", "at most 50%"},
		{"better_than_reverse_significant", Expectation{Cell: "legacy", BetterThan: "xmw"}, []Status{F},
			"legacy is significantly worse: reverse p=1.9e-08 < 0.01", "fail by chance"},
		{"fewer_resets", Expectation{Cell: "syndrop", FewerResetsThan: "legacy"}, []Status{H},
			"0/80 windows with resets", "reset windows"},
		{"connect_p99_holds", Expectation{Cell: "syndrop", ConnectP99AtLeast: time.Second}, []Status{H},
			"p99 connect 3.10s", "not a test"},
		{"connect_p99_fails", Expectation{Cell: "xmw", ConnectP99AtLeast: time.Second}, []Status{F},
			"p99 connect 2.00ms", "not a test"},
		{"missing_cell", Expectation{Cell: "nope", Failures: "none"}, []Status{V}, `"nope" is not in`, ""},
		{"missing_other_cell", Expectation{Cell: "xmw", BetterThan: "nope"}, []Status{V}, `"nope"`, ""},
		{"two_claims", Expectation{Cell: "xmw", Failures: "none", BetterThan: "legacy"}, []Status{H, H},
			"0 failures", ""},
		{"no_claim", Expectation{Cell: "xmw"}, []Status{F}, "no claim", ""},
	}
	cells := testCells()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vs := Check([]Expectation{tc.exp}, cells)
			if len(vs) != len(tc.want) {
				t.Fatalf("got %d verdicts %+v, want %d", len(vs), vs, len(tc.want))
			}
			for i, v := range vs {
				if v.Status != tc.want[i] || v.Pass != (tc.want[i] == StatusHolds) || v.Cell != tc.exp.Cell ||
					v.Claim == "" {
					t.Errorf("verdict %d = %+v, want %s", i, v, tc.want[i])
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
