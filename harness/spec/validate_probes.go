package spec

import (
	"fmt"
	"regexp"
	"slices"
)

// RouterHost names the router namespace in probe specs.
const RouterHost = "router"

var ifaceName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// probes checks the probe specs and fills their defaults.
func (v *validator) probes(p *Probes, hosts []string, services map[string]*Service) {
	if p == nil {
		return
	}
	withRouter := append(slices.Clone(hosts), RouterHost)
	for i := range p.Capture {
		c := &p.Capture[i]
		path := fmt.Sprintf("probes.capture[%d]", i)
		v.hostRef(path+".host", c.Host, withRouter)
		if c.Iface == "" && c.Host == RouterHost {
			v.add(path+".iface", "missing; on the router name the link by its host (e.g. proxy)")
		} else if c.Iface == "" {
			c.Iface = "eth0"
		} else if !ifaceName.MatchString(c.Iface) {
			v.add(path+".iface", "%q is not an interface name (1-15 of [A-Za-z0-9_.-])", c.Iface)
		}
		if c.Snaplen != 0 && (c.Snaplen < 64 || c.Snaplen > 262144) {
			v.add(path+".snaplen", "%d out of range 64..262144 (or 0 for whole packets)", c.Snaplen)
		}
	}
	for i, st := range p.States {
		path := fmt.Sprintf("probes.states[%d]", i)
		v.hostRef(path+".host", st.Host, hosts)
		if st.Interval < 0 {
			v.add(path+".interval", "%s is negative", st.Interval)
		}
	}
	for i, pr := range p.Procs {
		path := fmt.Sprintf("probes.procs[%d]", i)
		v.serviceRef(path+".service", pr.Service, services)
		if pr.Interval < 0 {
			v.add(path+".interval", "%s is negative", pr.Interval)
		}
	}
}
