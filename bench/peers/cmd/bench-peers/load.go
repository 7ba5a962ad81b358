package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/faultlab/faultlab/bench/peers"
)

// generator runs one step of the ladder: a rate for the step's duration, new connection per request, from the
// client's namespace to the proxy.
type generator struct {
	name string
	argv func(rate float64, raw string) []string // the command; raw is a file prefix for its own output
	// parse turns the finished child into a step (the child's usage is filled in by the caller).
	parse func(ctx context.Context, res childResult, raw string) (peers.GenStep, error)
}

// loadBench is the load-generation comparison: one lab, one client namespace, one target.
type loadBench struct {
	ns      string // the client's namespace name
	target  netip.AddrPort
	step    time.Duration
	timeout time.Duration
	dir     string // raw outputs
	vegeta  string // the vegeta binary
}

func (b *loadBench) generators() []generator {
	secs := strconv.Itoa(int(b.step.Seconds()))
	to := strconv.Itoa(int(b.timeout.Seconds()))
	lab := generator{name: "lab",
		argv: func(rate float64, _ string) []string {
			return []string{self(), "loadgen", "-target", b.target.String(), "-rate", ftoa(rate),
				"-duration", b.step.String(), "-timeout", b.timeout.String()}
		},
		parse: func(_ context.Context, res childResult, raw string) (peers.GenStep, error) {
			os.WriteFile(raw+".json", res.Stdout, 0o644)
			var st peers.GenStep
			return st, json.Unmarshal(res.Stdout, &st)
		}}
	vegeta := generator{name: "vegeta",
		argv: func(rate float64, raw string) []string {
			return []string{b.vegeta, "attack", "-rate=" + ftoa(rate) + "/1s", "-duration=" + secs + "s",
				"-keepalive=false", "-timeout=" + to + "s", "-targets=" + filepath.Join(b.dir, "vegeta.targets"),
				"-output=" + raw + ".bin"}
		},
		parse: func(ctx context.Context, _ childResult, raw string) (peers.GenStep, error) {
			rep, err := runIn(ctx, "", b.vegeta, "report", "-type=json", raw+".bin")
			if err != nil {
				return peers.GenStep{}, err
			}
			os.WriteFile(raw+".json", rep.Stdout, 0o644)
			os.Remove(raw + ".bin") // the attack's results: large, and summarised in the report
			return peers.ParseVegeta(rep.Stdout)
		}}
	httperf := generator{name: "httperf",
		argv: func(rate float64, _ string) []string {
			return []string{"httperf", "--server", b.target.Addr().String(), "--port", strconv.Itoa(int(b.target.Port())),
				"--uri", "/", "--http-version=1.0", "--rate", ftoa(rate), "--num-conns", ftoa(rate * b.step.Seconds()),
				"--num-calls", "1", "--timeout", to, "--hog", "-v", "-v"} // -v twice: the lifetime histogram
		},
		parse: func(_ context.Context, res childResult, raw string) (peers.GenStep, error) {
			os.WriteFile(raw+".txt", res.Stdout, 0o644)
			return peers.ParseHttperf(string(res.Stdout))
		}}
	return []generator{lab, vegeta, httperf}
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// run climbs the ladder: start, start+inc, ... up to max, every generator at each rate (their order rotating
// from step to step, so none always runs first or right after the heaviest), each until its first step that
// does not hold.
func (b *loadBench) run(ctx context.Context, start, inc, maxRate float64, log func(string, ...any)) ([]peers.GenStep, error) {
	if err := os.WriteFile(filepath.Join(b.dir, "vegeta.targets"),
		[]byte("GET http://"+b.target.String()+"/\n"), 0o644); err != nil {
		return nil, err
	}
	gens := b.generators()
	stopped := map[string]bool{}
	var steps []peers.GenStep
	for i, rate := 0, start; rate <= maxRate && len(stopped) < len(gens); i, rate = i+1, rate+inc {
		for j := range gens {
			g := gens[(i+j)%len(gens)]
			if stopped[g.name] {
				continue
			}
			st, err := b.one(ctx, g, rate)
			if err != nil {
				return steps, err
			}
			steps = append(steps, st)
			log("load %-8s %6.0f/s: achieved %8.0f/s (%.3f), failed %d/%d, p99 %s, lag p99 %s, cpu/1k %s, rss %d MB\n",
				g.name, rate, st.Achieved, st.Ratio(), st.Failed, st.Attempts, dur(st.P99), dur(st.LagP99),
				st.CPUPer1000().Round(time.Microsecond), st.MaxRSS/1024)
			if !st.Held() {
				stopped[g.name] = true
			}
			time.Sleep(time.Second) // let the proxy's and the backend's sockets of the step close
		}
	}
	return steps, nil
}

// one runs g at rate and returns its step, with the child's CPU and memory. A tool that has not finished
// 20 s after the step's duration and its timeout is stopped (SIGINT, SIGKILL 10 s later) and its step counts
// as failed whole (httperf --hog spins when it finds no free port to bind).
func (b *loadBench) one(ctx context.Context, g generator, rate float64) (peers.GenStep, error) {
	raw := filepath.Join(b.dir, fmt.Sprintf("%s-%.0f", g.name, rate))
	stepCtx, cancel := context.WithTimeout(ctx, b.step+b.timeout+20*time.Second)
	defer cancel()
	res, err := runIn(stepCtx, b.ns, g.argv(rate, raw)...)
	if err != nil && ctx.Err() == nil && errors.Is(stepCtx.Err(), context.DeadlineExceeded) {
		os.WriteFile(raw+".hung.txt", append(res.Stdout, res.Stderr...), 0o644)
		n := int64(rate * b.step.Seconds())
		return peers.GenStep{Tool: g.name, Target: rate, Attempts: n, Failed: n, P99: -1, LagP99: -1, Hung: true,
			CPU: res.CPU, MaxRSS: res.MaxRSS}, nil
	}
	if err != nil {
		return peers.GenStep{}, fmt.Errorf("load %s at %.0f/s: %w", g.name, rate, err)
	}
	st, err := g.parse(ctx, res, raw)
	if err != nil {
		return st, fmt.Errorf("load %s at %.0f/s: %w", g.name, rate, err)
	}
	st.Tool, st.Target, st.CPU, st.MaxRSS = g.name, rate, res.CPU, res.MaxRSS
	return st, nil
}

// profile reruns the lab's generator at rate with a profile: kind is "cpuprofile" or "memprofile".
func (b *loadBench) profile(ctx context.Context, kind string, rate float64, path string) error {
	argv := append(b.generators()[0].argv(rate, ""), "-"+kind, path)
	_, err := runIn(ctx, b.ns, argv...)
	return err
}

func dur(d time.Duration) string {
	if d < 0 {
		return "n/a"
	}
	return d.Round(10 * time.Microsecond).String()
}
