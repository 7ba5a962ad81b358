package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/netns"
	"github.com/moby/moby/api/types/container"
)

func TestExecArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    execArgs
		wantErr string
	}{
		{"host_dashdash_cmd", []string{"client", "--", "ss", "-tan"}, execArgs{host: "client", argv: []string{"ss", "-tan"}}, ""},
		{"no_dashdash", []string{"client", "ss"}, execArgs{host: "client", argv: []string{"ss"}}, ""},
		{"run_before", []string{"--run", "abc", "proxy", "--", "curl", "-s", "http://x/"},
			execArgs{run: "abc", host: "proxy", argv: []string{"curl", "-s", "http://x/"}}, ""},
		{"run_after_host", []string{"proxy", "--run=fl-abc", "--", "ss", "--run", "x"},
			execArgs{run: "fl-abc", host: "proxy", argv: []string{"ss", "--run", "x"}}, ""},
		{"no_command", []string{"client", "--"}, execArgs{}, "want HOST and a command"},
		{"nothing", nil, execArgs{}, "want HOST and a command"},
		{"cmd_flags_without_dashdash", []string{"client", "ss", "-tan"}, execArgs{}, "goes after --"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseExecArgs(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.run != tt.want.run || got.host != tt.want.host || !slices.Equal(got.argv, tt.want.argv) {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestPickHost(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	hosts := []labHost{
		{Run: "fl-aaa", Host: "client", Backend: "netns", Created: t0},
		{Run: "fl-aaa", Host: "proxy", Backend: "netns", Created: t0},
		{Run: "fl-aaa", Host: "router", Backend: "netns", Created: t0},
		{Run: "fl-bbb", Host: "client", Backend: "docker", Created: t0.Add(time.Minute)},
		{Run: "fl-bbb", Host: "router", Backend: "docker", Created: t0.Add(time.Minute)},
		{Run: "fl-ccc", Host: "client", Backend: "netns", Created: t0.Add(-time.Minute)},
	}
	tests := []struct {
		name, run, host string
		hosts           []labHost
		wantRun         string
		wantN           int
		wantErr         string
	}{
		{"newest_of_three", "", "client", hosts, "fl-bbb", 3, ""},
		{"only_one", "", "proxy", hosts, "fl-aaa", 1, ""},
		{"run_id", "aaa", "client", hosts, "fl-aaa", 1, ""},
		{"run_prefix", "fl-ccc", "client", hosts, "fl-ccc", 1, ""},
		{"router", "bbb", "router", hosts, "fl-bbb", 1, ""},
		{"tie_first_run", "", "x", []labHost{{Run: "fl-b", Host: "x", Created: t0}, {Run: "fl-a", Host: "x", Created: t0}},
			"fl-a", 2, ""},
		{"no_lab", "", "client", nil, "", 0, "no lab is running"},
		{"no_such_host", "", "backend", hosts, "", 0,
			`no running lab has host "backend"; running labs: fl-aaa (netns: client proxy router), fl-bbb (docker: client router), fl-ccc (netns: client)`},
		{"no_such_run", "zzz", "client", hosts, "", 0, "no running lab fl-zzz; running labs: fl-aaa"},
		{"run_lacks_host", "bbb", "proxy", hosts, "", 0, `lab fl-bbb has no host "proxy": fl-bbb (docker: client router)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands, err := candidates(tt.hosts, tt.run, tt.host)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cands) != tt.wantN {
				t.Errorf("%d candidates, want %d: %v", len(cands), tt.wantN, cands)
			}
			if h := newest(cands); h.Run != tt.wantRun || h.Host != tt.host {
				t.Errorf("picked %v, want host %s of %s", h, tt.host, tt.wantRun)
			}
		})
	}
}

func TestExecNetnsHosts(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	runs := []netns.Run{
		{Prefix: "fl-abc", Namespaces: []string{"fl-abc-client", "fl-abc-my-proxy", "fl-abc-router"}},
		{Prefix: "fl-x", Namespaces: []string{"fl-x"}}, // an orphan without a host part
	}
	got := netnsHostsOf(runs, func(string) time.Time { return t0 })
	want := []labHost{
		{Run: "fl-abc", Host: "client", Backend: "netns", Created: t0, Netns: netns.NetnsDir + "/fl-abc-client"},
		{Run: "fl-abc", Host: "my-proxy", Backend: "netns", Created: t0, Netns: netns.NetnsDir + "/fl-abc-my-proxy"},
		{Run: "fl-abc", Host: "router", Backend: "netns", Created: t0, Netns: netns.NetnsDir + "/fl-abc-router"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestExecContainerHosts(t *testing.T) {
	labels := func(run, host string) map[string]string {
		return map[string]string{"faultlab.run": run, "faultlab.host": host, "faultlab.owner": "1:2"}
	}
	items := []container.Summary{
		{ID: "c1", Created: 100, State: container.StateRunning, Labels: labels("fl-abc", "client")},
		{ID: "c2", Created: 100, State: container.StateRunning, Labels: labels("fl-abc", "router")},
		{ID: "c3", Created: 100, State: container.StateExited, Labels: labels("fl-abc", "proxy")},
		{ID: "c4", Created: 100, State: container.StateRunning, Labels: labels("fl-", "client")},
		{ID: "c5", Created: 100, State: container.StateRunning, Labels: labels("other", "client")},
		{ID: "c6", Created: 100, State: container.StateRunning, Labels: labels("fl-abc", "")},
	}
	got := containerHosts(items)
	want := []labHost{
		{Run: "fl-abc", Host: "client", Backend: "docker", Created: time.Unix(100, 0), Container: "c1"},
		{Run: "fl-abc", Host: "router", Backend: "docker", Created: time.Unix(100, 0), Container: "c2"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}
