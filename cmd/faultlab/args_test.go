package main

import (
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/faultlab/faultlab/results"
)

func TestParseInterspersedArgs(t *testing.T) {
	type got struct {
		cells string
		long  bool
		seed  int64
		pos   []string
	}
	tests := []struct {
		name    string
		args    []string
		want    got
		wantErr string
	}{
		{"none", nil, got{}, ""},
		{"flags_before", []string{"--cells", "legacy", "--long", "f.yaml"},
			got{cells: "legacy", long: true, pos: []string{"f.yaml"}}, ""},
		{"flags_after", []string{"scenarios/reload.yaml", "--cells", "legacy"},
			got{cells: "legacy", pos: []string{"scenarios/reload.yaml"}}, ""},
		{"bool_after", []string{"FILE", "--long"}, got{long: true, pos: []string{"FILE"}}, ""},
		{"mixed", []string{"-seed", "7", "a", "--long", "b", "--cells=x,y", "c"},
			got{cells: "x,y", long: true, seed: 7, pos: []string{"a", "b", "c"}}, ""},
		{"equals", []string{"f", "--seed=42", "-cells=legacy"},
			got{cells: "legacy", seed: 42, pos: []string{"f"}}, ""},
		{"space_value", []string{"f", "--seed", "42"}, got{seed: 42, pos: []string{"f"}}, ""},
		{"value_looks_like_flag", []string{"--cells", "-x", "f"}, got{cells: "-x", pos: []string{"f"}}, ""},
		{"bool_explicit_false", []string{"--long=false", "f"}, got{pos: []string{"f"}}, ""},
		// A bool flag takes no separate value: "false" is positional, as with fs.Parse.
		{"bool_no_separate_value", []string{"--long", "false"}, got{long: true, pos: []string{"false"}}, ""},
		{"dash_is_positional", []string{"-", "--long"}, got{long: true, pos: []string{"-"}}, ""},
		{"double_dash", []string{"--long", "HOST", "--", "ss", "-tan", "--cells", "x"},
			got{long: true, pos: []string{"HOST", "ss", "-tan", "--cells", "x"}}, ""},
		{"double_dash_first", []string{"--", "--long"}, got{pos: []string{"--long"}}, ""},
		{"double_dash_kept_after_first", []string{"h", "--", "sh", "--", "-c"},
			got{pos: []string{"h", "sh", "--", "-c"}}, ""},
		{"double_dash_last", []string{"f", "--"}, got{pos: []string{"f"}}, ""},
		{"double_dash_as_value", []string{"--cells", "--", "f"}, got{cells: "--", pos: []string{"f"}}, ""},
		{"flag_after_double_dash_positional", []string{"--", "f", "--seed", "3"},
			got{pos: []string{"f", "--seed", "3"}}, ""},
		{"unknown_flag", []string{"f", "--nope"}, got{}, "flag provided but not defined: -nope"},
		{"unknown_flag_equals", []string{"--nope=1", "f"}, got{}, "flag provided but not defined: -nope"},
		{"missing_value", []string{"f", "--cells"}, got{}, "flag needs an argument: -cells"},
		{"bad_value", []string{"f", "--seed", "x"}, got{}, `invalid value "x" for flag -seed`},
		{"bad_syntax", []string{"---long"}, got{}, "bad flag syntax: ---long"},
		{"help", []string{"f", "-h"}, got{}, flag.ErrHelp.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var g got
			fs.StringVar(&g.cells, "cells", "", "")
			fs.BoolVar(&g.long, "long", false, "")
			fs.Int64Var(&g.seed, "seed", 0, "")
			err := parseInterspersed(fs, tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			g.pos = fs.Args()
			if g.cells != tt.want.cells || g.long != tt.want.long || g.seed != tt.want.seed ||
				!slices.Equal(g.pos, tt.want.pos) && len(g.pos)+len(tt.want.pos) > 0 {
				t.Errorf("got %+v, want %+v", g, tt.want)
			}
		})
	}
}

func TestUnmetClaimsExit(t *testing.T) {
	holds := results.Verdict{Cell: "a", Claim: "x", Status: results.StatusHolds}
	undecided := results.Verdict{Cell: "b", Claim: "y", Status: results.StatusInconclusive}
	void := results.Verdict{Cell: "c", Claim: "z", Status: results.StatusVoid}
	code := func(err error) int {
		var ee exitCoder
		if err == nil {
			return 0
		}
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		return 1
	}
	for _, tc := range []struct {
		name      string
		vs        []results.Verdict
		accept    bool
		runFailed bool
		want      int
	}{
		{"all hold", []results.Verdict{holds}, false, false, 0},
		{"inconclusive", []results.Verdict{holds, undecided}, false, false, 3},
		{"inconclusive accepted", []results.Verdict{holds, undecided}, true, false, 0},
		{"inconclusive and a failed cell", []results.Verdict{undecided}, false, true, 1},
		{"void", []results.Verdict{undecided, void}, true, false, 1},
	} {
		err := unmetClaims(tc.vs, tc.accept, tc.runFailed)
		if got := code(errors.Join(errors.New("other"), err)); tc.want != 0 && got != tc.want || tc.want == 0 && err != nil {
			t.Errorf("%s: exit %d (%v), want %d", tc.name, got, err, tc.want)
		}
	}
	if err := unmetClaims([]results.Verdict{undecided}, false, false); !strings.Contains(err.Error(),
		"inconclusive: b: y") {
		t.Errorf("message %q", err)
	}
}
