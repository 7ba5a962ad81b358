package analyses

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPlanOrder(t *testing.T) {
	order, err := plan([]string{"port_budget", "capture"})
	if err != nil || len(order) != 2 || order[0] != Capture || order[1] != PortBudget {
		t.Fatalf("plan %v %v: want capture before port_budget, each once", order, err)
	}
	if _, err := plan([]string{"nope"}); err == nil || !strings.Contains(err.Error(), "known: [capture ") {
		t.Errorf("unknown analysis: %v", err)
	}
}

func TestRunSkipsWhatFailed(t *testing.T) {
	bad := &Analyzer{Name: "bad", Run: func(*Input) (Output, error) { return Output{}, errors.New("boom") }}
	after := &Analyzer{Name: "after", Requires: []*Analyzer{bad},
		Run: func(*Input) (Output, error) { return Output{Value: 1}, nil }}
	ok := &Analyzer{Name: "ok", Run: func(*Input) (Output, error) { return Output{Value: map[string]int{"n": 3}, Summary: "3"}, nil }}
	for _, a := range []*Analyzer{bad, after, ok} {
		Registry[a.Name] = a
	}
	t.Cleanup(func() {
		for _, n := range []string{"bad", "after", "ok"} {
			delete(Registry, n)
		}
	})
	out, err := Run([]string{"after", "ok"}, Input{})
	if len(out) != 1 || out[0].Name != "ok" || string(out[0].Result) != `{"n":3}` {
		t.Errorf("results %+v: want only ok's", out)
	}
	if err == nil || !strings.Contains(err.Error(), "analysis bad: boom") ||
		!strings.Contains(err.Error(), "analysis after: a required analysis failed") {
		t.Errorf("error %v", err)
	}
}

// TestTWFractionEarlyWindow: the share comes only from connections opened before 40% of Ports/Offered, so a
// change in the mix of closes after that (as when ports run out) does not move it.
func TestTWFractionEarlyWindow(t *testing.T) {
	e := PortBudgetResult{Ports: 1000, Offered: 500, MeasuredFirst: 2700 * time.Millisecond}
	var conns []serverConn
	for i := range 1500 {
		start := time.Duration(i) * 2 * time.Millisecond // 500/s
		held := i%4 != 0                                 // 75% early
		if start >= 2*time.Second {
			held = true // after 2 s every close leaves TIME_WAIT on the proxy
		}
		conns = append(conns, serverConn{start: start, held: held})
	}
	twFraction(conns, &e)
	if e.EstimatedOver != 800*time.Millisecond || e.TWSample != 400 || e.TWFraction != 0.75 {
		t.Errorf("estimated over %s from %d connections: share %.3f, want 800ms, 400, 0.75", e.EstimatedOver,
			e.TWSample, e.TWFraction)
	}
	if e.HeldAtFirst != 1000+350-250 {
		t.Errorf("held at first %d, want %d", e.HeldAtFirst, 1000+350-250)
	}
}
