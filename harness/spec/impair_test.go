package spec

import (
	"os"
	"strings"
	"testing"
	"time"
)

const impairBase = `
impair:
  engine: userspace
  links:
    - host: client
      to_host: {delay: 10ms, jitter: 2ms, keep_order: true, loss: 0.005}
      from_host:
        delay: 10ms
        schedule:
          - {at: 5s, loss: 0.02}
          - {at: 10s}
`

func TestImpairParses(t *testing.T) {
	base, err := os.ReadFile("testdata/reload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse("t.yaml", append(base, impairBase...))
	if err != nil {
		t.Fatal(err)
	}
	l := s.Impair.Links[0]
	if l.ToHost.Delay != 10*time.Millisecond || !l.ToHost.KeepOrder || l.ToHost.Loss != 0.005 {
		t.Errorf("to_host = %+v", l.ToHost)
	}
	if len(l.FromHost.Schedule) != 2 || l.FromHost.Schedule[0].Loss != 0.02 || l.FromHost.Schedule[1].At != 10*time.Second {
		t.Errorf("from_host schedule = %+v", l.FromHost.Schedule)
	}
}

func TestImpairErrors(t *testing.T) {
	base, err := os.ReadFile("testdata/reload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(string(base), "\n")
	tests := []struct{ name, yaml, want string }{
		{"loss_percent", "impair:\n  links:\n    - host: client\n      to_host: {loss: 5}\n",
			":4: impair.links[0].to_host.loss: 5 is not a probability in [0,1] (write 1% as 0.01)"},
		{"rate_unit", "impair:\n  links:\n    - host: client\n      to_host: {rate: 10}\n",
			`:4: impair.links[0].to_host.rate: "10": want a number with a unit`},
		{"delay_unit", "impair:\n  links:\n    - host: client\n      to_host: {delay: 20}\n",
			`impair.links[0].to_host.delay: "20" has no unit`},
		{"unknown_host", "impair:\n  links:\n    - host: wan\n      to_host: {delay: 20ms}\n",
			`:3: impair.links[0].host: no host "wan"`},
		{"engine", "impair:\n  engine: tc\n  links: []\n", `impair.engine: "tc" is not one of`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", append(base, tt.yaml...))
			if err == nil {
				t.Fatal("no error")
			}
			// lines in the snippet count from the end of the base file
			want := tt.want
			if strings.HasPrefix(want, ":") {
				var n int
				for _, c := range want[1:] {
					if c < '0' || c > '9' {
						break
					}
					n = n*10 + int(c-'0')
				}
				want = strings.Replace(want, ":"+itoa(n)+":", "t.yaml:"+itoa(lines+n)+":", 1)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, want)
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}
