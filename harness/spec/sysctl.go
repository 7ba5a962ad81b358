package spec

import (
	"fmt"
	"regexp"
	"strings"
)

// RemovedSysctls maps sysctls that no longer exist in current kernels to the message a user sees when a
// scenario asks for one. The harness reuses it to explain an ENOENT from /proc/sys.
var RemovedSysctls = map[string]string{
	"net.ipv4.tcp_tw_recycle": "net.ipv4.tcp_tw_recycle was removed in Linux 4.12; use net.ipv4.tcp_tw_reuse (see docs)",
}

// globalSysctls are net.* sysctls that are not per network namespace: setting one in a lab host would
// change the machine running the lab.
var globalSysctls = map[string]string{
	"net.ipv4.tcp_max_orphans": "net.ipv4.tcp_max_orphans is global, not per network namespace: setting it " +
		"would change the machine running the lab, so scenarios cannot set it",
}

var sysctlName = regexp.MustCompile(`^net\.(ipv4|ipv6|core)(\.[a-z0-9_]+)+$`)

// checkSysctl returns what is wrong with setting name to value, or "".
func checkSysctl(name, value string) string {
	if msg, ok := RemovedSysctls[name]; ok {
		return msg
	}
	if msg, ok := globalSysctls[name]; ok {
		return msg
	}
	if !sysctlName.MatchString(name) {
		return fmt.Sprintf("%q is not a namespaced sysctl name; want net.ipv4.*, net.ipv6.* or net.core.* "+
			"in lowercase dotted form, e.g. net.ipv4.tcp_tw_reuse", name)
	}
	if strings.TrimSpace(value) == "" {
		return "value is empty"
	}
	if strings.ContainsAny(value, "\n\r") {
		return "value must be a single line"
	}
	return ""
}

// sysctls checks one host's (or one matrix row's) sysctls for one host.
func (v *validator) sysctls(path string, m map[string]string) {
	for _, name := range sortedKeys(m) {
		if msg := checkSysctl(name, m[name]); msg != "" {
			v.add(path+"["+name+"]", "%s", msg)
		}
	}
}
