package services

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/faultlab/faultlab/harness/testutil"
)

// TestCheckReports runs real haproxy and real Tengine checking two nginx servers every 200 ms, and asks each
// for its account: both up; after one server stops, that one down and failing, and haproxy's failed-check
// count at least fall (2) for it.
func TestCheckReports(t *testing.T) {
	lab := newLab(t)
	if bins, _ := FindBinaries("tengine", nil); bins[0].Err != nil {
		testutil.SkipMissing(t, bins[0].Err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	servers, backends := startNginxServers(ctx, t, lab.backend, 80, 81)
	hx, err := NewHAProxy(lab.proxy, t.TempDir(), HAProxyConfig{Bind: at(lab.proxy, 80), Servers: servers,
		Options: map[string]string{"check": "true", "check_inter": "200ms"}})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := NewTengine(lab.proxy, t.TempDir(), TengineConfig{Bind: at(lab.proxy, 81), Servers: servers,
		Options: map[string]string{"check_interval": "200ms", "check_timeout": "500ms", "check_rise": "1",
			"check_fall": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	checkers := map[string]interface {
		Service
		CheckReporter
	}{"haproxy": hx, "tengine": tg}
	for _, c := range checkers {
		t.Cleanup(func() { _ = c.Stop(context.Background()) })
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(name string, ok func(CheckReport) bool) CheckReport {
		t.Helper()
		var last CheckReport
		err := poll(ctx, func() (bool, error) {
			var err error
			last, err = checkers[name].CheckReport(ctx)
			return err == nil && ok(last), err
		})
		if err != nil {
			t.Fatalf("%s: last report %+v: %v", name, last, err)
		}
		return last
	}
	for name := range checkers {
		wait(name, func(r CheckReport) bool { return r.Servers == 2 && r.Up == 2 && r.Failing == 0 })
	}
	if err := backends[1].Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for name := range checkers {
		r := wait(name, func(r CheckReport) bool { return r.Up == 1 && r.Down == 1 && r.Failing == 1 })
		t.Logf("%s: %s", name, r)
		if name == "haproxy" && r.Failed < 2 {
			t.Errorf("haproxy marked a server down after %d failed checks, its fall is 2", r.Failed)
		}
		if name == "tengine" && r.Failed != -1 {
			t.Errorf("tengine reports %d failed checks; its module keeps no such count", r.Failed)
		}
	}
	n, err := NewNginx(lab.backend, t.TempDir(), at(lab.backend, 82), nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := NewHAProxy(lab.proxy, t.TempDir(), HAProxyConfig{Bind: at(lab.proxy, 82),
		Servers: []netip.AddrPort{n.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.CheckReport(ctx); !errors.Is(err, ErrNoChecks) {
		t.Errorf("haproxy without checks: %v, want ErrNoChecks", err)
	}
}

func TestParseCheckStatus(t *testing.T) {
	tengine := `{"servers": {"total": 3, "generation": 1, "server": [
		{"index": 0, "upstream": "backend", "name": "10.1.0.2:80", "status": "up", "rise": 9, "fall": 0, "type": "http", "port": 0},
		{"index": 1, "upstream": "backend", "name": "10.1.0.2:81", "status": "down", "rise": 0, "fall": 4, "type": "http", "port": 0},
		{"index": 2, "upstream": "backend", "name": "10.1.0.2:82", "status": "up", "rise": 0, "fall": 1, "type": "http", "port": 0}]}}`
	r, err := parseTengineStatus([]byte(tengine))
	if want := (CheckReport{Servers: 3, Up: 2, Down: 1, Failing: 2, Failed: -1}); err != nil || r != want {
		t.Errorf("tengine: %+v %v, want %+v", r, err, want)
	}
	stat := "# pxname,svname,status,chkfail,check_status,\n" +
		"fe,FRONTEND,OPEN,,,\n" +
		"be,s0,UP,0,L7OK,\n" +
		"be,s1,DOWN,7,L4CON,\n" +
		"be,s2,UP 1/2,1,* L7OK,\n" +
		"be,BACKEND,UP,,,\n"
	r, err = parseHAProxyStat(stat)
	if want := (CheckReport{Servers: 3, Up: 2, Down: 1, Failing: 1, Failed: 8}); err != nil || r != want {
		t.Errorf("haproxy: %+v %v, want %+v", r, err, want)
	}
	if _, err := parseHAProxyStat("# pxname,svname\nbe,s0\n"); err == nil {
		t.Error("show stat without the check columns parsed")
	}
}
