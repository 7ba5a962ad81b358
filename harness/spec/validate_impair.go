package spec

import (
	"fmt"
	"math"
	"regexp"
	"slices"
)

var (
	impairEngines = []string{"auto", "netem", "userspace"}
	distributions = []string{"uniform", "normal", "pareto"}
	rateValue     = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(bit|kbit|mbit|gbit)$`)
)

// impair checks an impairment section (the scenario's or a matrix row's) and fills its defaults. The
// engine checks the values again when it applies them; this pass names the line.
func (v *validator) impair(path string, im *Impair, hosts []string, end runEnd) {
	if im == nil {
		return
	}
	if im.Engine == "" {
		im.Engine = "auto"
	} else if !slices.Contains(impairEngines, im.Engine) {
		v.add(path+".engine", "%q is not one of %s", im.Engine, listed(impairEngines))
	}
	for i := range im.Links {
		l := &im.Links[i]
		p := fmt.Sprintf("%s.links[%d]", path, i)
		v.hostRef(p+".host", l.Host, hosts)
		if l.ToHost == nil && l.FromHost == nil {
			v.add(p, "impairs nothing; set to_host (router -> host) and/or from_host (host -> router)")
		}
		v.impairDir(p+".to_host", l.ToHost, end)
		v.impairDir(p+".from_host", l.FromHost, end)
	}
}

func (v *validator) impairDir(path string, d *ImpairDir, end runEnd) {
	if d == nil {
		return
	}
	v.impairment(path, &d.Impairment)
	for i := range d.Schedule {
		st := &d.Schedule[i]
		p := fmt.Sprintf("%s.schedule[%d]", path, i)
		if st.At < 0 {
			v.add(p+".at", "%s is negative", st.At)
		} else if i > 0 && st.At <= d.Schedule[i-1].At {
			v.add(p+".at", "%s is not after the previous step (%s)", st.At, d.Schedule[i-1].At)
		} else if msg := end.after(st.At); msg != "" {
			v.add(p+".at", "%s", msg)
		}
		v.impairment(p, &st.Impairment)
	}
}

func (v *validator) impairment(path string, im *Impairment) {
	if im.Delay < 0 {
		v.add(path+".delay", "%s is negative", im.Delay)
	}
	if im.Jitter < 0 {
		v.add(path+".jitter", "%s is negative", im.Jitter)
	}
	if im.Distribution != "" && !slices.Contains(distributions, im.Distribution) {
		v.add(path+".distribution", "%q is not one of %s", im.Distribution, listed(distributions))
	}
	v.probability(path+".loss", im.Loss)
	if b := im.LossBurst; b != nil {
		v.probability(path+".loss_burst.p", b.P)
		v.probability(path+".loss_burst.r", b.R)
		v.probability(path+".loss_burst.one_minus_h", b.OneMinusH)
		v.probability(path+".loss_burst.one_minus_k", b.OneMinusK)
		if im.Loss > 0 {
			v.add(path+".loss_burst", "set either loss or loss_burst, not both")
		}
	}
	if im.Rate != "" && !rateValue.MatchString(im.Rate) {
		v.add(path+".rate", "%q: want a number with a unit, e.g. 10mbit, 512kbit, 1gbit", im.Rate)
	}
}

func (v *validator) probability(path string, p float64) {
	if math.IsNaN(p) || p < 0 || p > 1 {
		v.add(path, "%g is not a probability in [0,1] (write 1%% as 0.01)", p)
	}
}
