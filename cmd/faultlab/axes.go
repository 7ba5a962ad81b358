package main

import (
	"strings"

	"github.com/faultlab/faultlab/harness/runner"
	"github.com/faultlab/faultlab/harness/spec"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// addAxes crosses the scenario's cells with each --set axis, in the order given.
func (f *runFlags) addAxes(s *spec.Scenario) error {
	for _, set := range f.sets {
		a, err := spec.ParseSet(set)
		if err != nil {
			return err
		}
		if err := spec.AddAxis(s, a, "--set "+set); err != nil {
			return err
		}
	}
	return nil
}

// shardOptions adds --shard to the runner options.
func (f *runFlags) shardOptions(o runner.Options) (runner.Options, error) {
	if f.shard == "" {
		return o, nil
	}
	sh, err := runner.ParseShard(f.shard)
	if err != nil {
		return o, err
	}
	o.Shard = &sh
	return o, nil
}
