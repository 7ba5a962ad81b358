package runner

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/faultlab/faultlab/harness"
	"github.com/faultlab/faultlab/harness/docker"
	"github.com/faultlab/faultlab/harness/netns"
	"github.com/faultlab/faultlab/harness/services"
	"github.com/faultlab/faultlab/harness/spec"
	"github.com/faultlab/faultlab/harness/vm"
	"github.com/faultlab/faultlab/loadgen"
	"github.com/faultlab/faultlab/results/analyses"
)

// providers builds the lab's hosts, by backend name: the one table where a backend is chosen.
var providers = map[string]func(s *spec.Scenario) harness.Provider{
	"netns":  func(*spec.Scenario) harness.Provider { return netns.New() },
	"docker": func(s *spec.Scenario) harness.Provider { return docker.New(docker.Options{Images: images(s)}) },
}

func newProvider(name string, s *spec.Scenario) (harness.Provider, error) {
	if name == "" {
		name = "netns"
	}
	p, ok := providers[name]
	if !ok {
		return nil, fmt.Errorf("backend %q: %w (backends: %s)", name, harness.ErrUnsupported,
			strings.Join(slices.Sorted(maps.Keys(providers)), ", "))
	}
	return p(s), nil
}

// images picks each host's container image: the scenario's, else the lab's image for the kind of service
// the host runs (hosts without services, such as the client, get the provider's default, the tools image).
func images(s *spec.Scenario) map[string]string {
	out := map[string]string{}
	for _, sv := range s.Services {
		if e, err := services.Lookup(sv.Kind); err == nil && e.Image != "" {
			out[sv.Host] = docker.LabImage(e.Image)
		}
	}
	for _, h := range s.Hosts {
		if h.Image != "" {
			out[h.Name] = h.Image
		}
	}
	return out
}

// Vocabulary is what the lab's registries know, for spec.Check: service kinds (services.Registry),
// workloads (loadgen.Workloads), analyses (analyses.Registry), mitigations (this package's table) and the
// guests' kernels (vm.Kernels).
func Vocabulary() spec.Vocabulary {
	v := spec.Vocabulary{Services: map[string]spec.ServiceKind{}, Workloads: map[string]spec.WorkloadKind{},
		Analyses: analyses.Names(), Mitigations: slices.Sorted(maps.Keys(mitigations)), Kernels: vm.KernelNames()}
	for kind, e := range services.Registry {
		v.Services[kind] = spec.ServiceKind{Proxy: e.Role == services.RoleProxy, Strategies: e.Strategies,
			DefaultPort: e.DefaultPort, Speaks: e.Speaks, Options: e.Options}
	}
	for kind, w := range loadgen.Workloads {
		v.Workloads[kind] = spec.WorkloadKind{Speaks: w.Protocol, Persistent: w.Persistent}
	}
	return v
}
