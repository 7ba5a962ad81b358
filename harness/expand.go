package harness

import (
	"net/netip"
	"strings"
)

// ExpandAddrs replaces {addr} in a scenario value with the host's primary lab address and {addrs} with all
// its addresses, comma-separated, so a scenario can say `sources: "{addrs}"` without knowing the addresses.
func ExpandAddrs(v string, addrs []netip.Addr) string {
	if !strings.Contains(v, "{addr") || len(addrs) == 0 {
		return v
	}
	all := make([]string, len(addrs))
	for i, a := range addrs {
		all[i] = a.String()
	}
	v = strings.ReplaceAll(v, "{addrs}", strings.Join(all, ","))
	return strings.ReplaceAll(v, "{addr}", all[0])
}
