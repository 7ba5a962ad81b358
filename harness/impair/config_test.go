package impair

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{"10mbit": 10_000_000, "10Mbit/s": 10_000_000, "1.5gbit": 1_500_000_000,
		"500kbit": 500_000, "64000bit": 64_000, " 50 mbit ": 50_000_000} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{"10": "has no unit", "10mbps": "bytes", "fast": "want a number",
		"-1mbit": "non-negative"} {
		if _, err := ParseRate(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseRate(%q): error %v, want one containing %q", in, err, msg)
		}
	}
	for r, want := range map[Rate]string{10_000_000: "10mbit", 1_500_000: "1500kbit", 64_123: "64123bit"} {
		if r.String() != want {
			t.Errorf("%d.String() = %q, want %q", r, r.String(), want)
		}
	}
}

const sampleYAML = `
engine: userspace
links:
  - host: client
    to_host:
      impairment: {delay: 40ms, jitter: 5ms, distribution: normal, keep_order: true, loss: 0.01, rate: 10mbit}
      schedule:
        - at: 10s
          impairment: {loss: 0.02}
        - at: 20s
    from_host:
      impairment:
        rate: 10mbit
        loss_burst: {p: 0.01, r: 0.3, one_minus_h: 0.5, one_minus_k: 0}
`

func TestDecodeYAML(t *testing.T) {
	var c Config
	if err := yaml.Unmarshal([]byte(sampleYAML), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	to := c.Links[0].ToHost
	want := Impairment{Delay: 40 * time.Millisecond, Jitter: 5 * time.Millisecond, Distribution: Normal,
		KeepOrder: true, Loss: 0.01, Rate: 10_000_000}
	if to.Impairment != want {
		t.Errorf("to_host: %+v, want %+v", to.Impairment, want)
	}
	if len(to.Schedule) != 2 || to.Schedule[0].At != 10*time.Second || to.Schedule[0].Impairment.Loss != 0.02 ||
		!to.Schedule[1].Impairment.IsZero() {
		t.Errorf("schedule: %+v", to.Schedule)
	}
	if g := c.Links[0].FromHost.Impairment.LossBurst; g == nil || g.P != 0.01 || g.OneMinusH != 0.5 {
		t.Errorf("loss_burst: %+v", g)
	}
	initial, later := plan(c)
	if len(initial) != 2 || len(later) != 2 || later[1].at != 20*time.Second {
		t.Errorf("plan: %+v then %+v", initial, later)
	}
	var noUnit Config
	if err := yaml.Unmarshal([]byte("links: [{host: a, to_host: {impairment: {delay: 20}}}]"), &noUnit); err == nil {
		t.Error("a delay without unit decoded")
	}
}

func TestValidateNamesFields(t *testing.T) {
	c := Config{Engine: "tc", Links: []LinkConfig{
		{Host: "a", ToHost: &DirConfig{
			Impairment: Impairment{Delay: 10 * time.Millisecond, Jitter: 20 * time.Millisecond, Loss: 1.5},
			Schedule:   []Step{{At: 2 * time.Second}, {At: time.Second, Impairment: Impairment{Loss: -0.1}}},
		}},
		{Host: "a", FromHost: &DirConfig{Impairment: Impairment{Distribution: "weibull", Rate: 100,
			Loss: 0.1, LossBurst: &GilbertElliott{P: 2}}}},
		{Host: ""},
	}}
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`engine: "tc" is not one of`,
		"links[0].to_host.impairment.jitter: 20ms exceeds delay 10ms",
		"links[0].to_host.impairment.loss: 1.5 is not a probability",
		"links[0].to_host.schedule[1].at: 1s must be after the previous step's 2s",
		"links[0].to_host.schedule[1].impairment.loss: -0.1",
		`links[1].host: "a" already impaired by links[0]`,
		`links[1].from_host.impairment.distribution: "weibull" is not one of`,
		"links[1].from_host.impairment.distribution: weibull set without jitter",
		"links[1].from_host.impairment.rate: 100bit is outside",
		"links[1].from_host.impairment.loss_burst: set together with loss",
		"links[1].from_host.impairment.loss_burst.p: 2 is not a probability",
		"links[2].host: required",
		"links[2]: set to_host, from_host or both",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	ok := Impairment{Delay: 10 * time.Millisecond, Jitter: 30 * time.Millisecond, Distribution: Pareto}
	if err := ok.Validate(); err != nil {
		t.Errorf("pareto jitter above delay: %v", err)
	}
	if err := (Impairment{Delay: 1500 * time.Nanosecond}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "finer than the resolution") {
		t.Errorf("sub-µs delay: %v", err)
	}
}

func TestChooseEngine(t *testing.T) {
	av := Availability{Kernel: "6.18.44", Engines: []string{EngineUserspace},
		Missing: map[string]string{EngineNetem: "the sch_netem module is missing"}}
	for want, got := range map[string]string{"": EngineUserspace, EngineAuto: EngineUserspace,
		EngineUserspace: EngineUserspace} {
		if name, err := av.Choose(want); err != nil || name != got {
			t.Errorf("Choose(%q) = %q, %v", want, name, err)
		}
	}
	_, err := av.Choose(EngineNetem)
	const msg = "impair engine netem is not available on kernel 6.18.44: the sch_netem module is missing; " +
		"use engine: userspace or auto"
	if err == nil || err.Error() != msg || !errors.Is(err, ErrEngineUnavailable) {
		t.Errorf("Choose(netem): %v\nwant: %s", err, msg)
	}
	if _, err := (Availability{Kernel: "x", Missing: map[string]string{EngineNetem: "a", EngineUserspace: "b"}}).
		Choose(""); !errors.Is(err, ErrEngineUnavailable) {
		t.Errorf("no engine at all: %v", err)
	}
}

func TestReportJSON(t *testing.T) {
	r := Report{Engine: EngineUserspace, Requested: EngineAuto, Applied: []Applied{{At: time.Second,
		Host: "b", Direction: ToHost, Impairment: Impairment{Delay: time.Millisecond, Rate: 10_000_000}}},
		Stats: EngineStats{Engine: EngineUserspace, Queue: &QueueStats{Queued: 10, Seen: 7, Overflow: 3}}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"engine":"userspace"`, `"rate":"10mbit"`, `"overflow":3`, `"at_ns":1000000000`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("missing %s in %s", want, b)
		}
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.Applied[0].Impairment.Rate != 10_000_000 {
		t.Errorf("round trip: %v %+v", err, back)
	}
}
