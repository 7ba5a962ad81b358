package services

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/faultlab/faultlab/harness"
)

// Role is what a service is in the lab.
type Role string

// The roles.
const (
	RoleProxy   Role = "proxy"   // forwards the workload to backends; what a reload storm reloads
	RoleBackend Role = "backend" // answers the workload (through a proxy or directly)
)

// Config is the one constructor input of every driver.
type Config struct {
	Name     string
	Addr     netip.AddrPort   // where it listens
	Mode     string           // proxies: http | tcp
	Servers  []netip.AddrPort // proxies: the backends' addresses
	Strategy string           // proxies: reload strategy ("" = the driver's default)
	Options  map[string]string
}

// Entry describes a driver: what a scenario may ask of it, and how to build it.
type Entry struct {
	Kind        string
	Role        Role
	Strategies  []string // reload strategies it supports, the default first (empty: not reloadable)
	DefaultPort int
	// Speaks is the protocol clients speak to it ("http", "mysql"); "" for a proxy, whose mode decides.
	Speaks  string
	Image   string   // the lab image role for the docker backend: "haproxy", "nginx", "mariadb", "tengine"
	Options []string // option keys the driver accepts (so a scenario is checked before any work)
	// New validates cfg and prepares the service in dir (its configuration written, its binary found);
	// Start runs it. A missing binary is an error matching harness.ErrUnsupported that says how to get one.
	New func(h harness.NetnsHost, dir string, cfg Config) (Service, error)
}

// Registry maps a service kind (a scenario's services[].kind) to its driver.
var Registry = map[string]Entry{
	"haproxy": {Kind: "haproxy", Role: RoleProxy, Strategies: Strategies, DefaultPort: 80, Image: "haproxy", Options: HAProxyOptions, New: newHAProxy},
	"nginx":   {Kind: "nginx", Role: RoleBackend, DefaultPort: 80, Speaks: "http", Image: "nginx", Options: NginxOptions, New: newNginx},
	"mariadb": {Kind: "mariadb", Role: RoleBackend, DefaultPort: 3306, Speaks: "mysql", Image: "mariadb", Options: MariaDBOptions, New: newMariaDB},
	"tengine": {Kind: "tengine", Role: RoleProxy, Strategies: TengineStrategies, DefaultPort: 80, Image: "tengine", Options: TengineOptions, New: newTengine},
}

// Processes is a service that lists its live processes, for the process sampler.
type Processes interface {
	// PIDs lists the service's live PIDs (none when it is not running).
	PIDs() []int
}

// Lookup returns the driver of kind; an unknown kind is an error listing the known ones.
func Lookup(kind string) (Entry, error) {
	if e, ok := Registry[kind]; ok {
		return e, nil
	}
	return Entry{}, fmt.Errorf("unknown service kind %q (known: %s)", kind,
		strings.Join(slices.Sorted(maps.Keys(Registry)), ", "))
}

// CheckOptions rejects option keys the driver does not accept, naming them and the allowed ones.
func (e Entry) CheckOptions(opts map[string]string) error {
	return checkOptionKeys(e.Kind, opts, e.Options)
}

func newHAProxy(h harness.NetnsHost, dir string, cfg Config) (Service, error) {
	return service(NewHAProxy(h, dir, HAProxyConfig{Name: cfg.Name, Bind: cfg.Addr, Mode: cfg.Mode,
		Servers: cfg.Servers, Strategy: cfg.Strategy, Options: cfg.Options}))
}

func newTengine(h harness.NetnsHost, dir string, cfg Config) (Service, error) {
	return service(NewTengine(h, dir, TengineConfig{Name: cfg.Name, Bind: cfg.Addr, Mode: cfg.Mode,
		Servers: cfg.Servers, Strategy: cfg.Strategy, Options: cfg.Options}))
}

func newNginx(h harness.NetnsHost, dir string, cfg Config) (Service, error) {
	if err := backendConfig("nginx", cfg); err != nil {
		return nil, err
	}
	n, err := NewNginx(h, dir, cfg.Addr, cfg.Options)
	if err != nil {
		return nil, err
	}
	n.name = cfg.Name
	return n, nil
}

func newMariaDB(h harness.NetnsHost, dir string, cfg Config) (Service, error) {
	if err := backendConfig("mariadb", cfg); err != nil {
		return nil, err
	}
	m, err := NewMariaDB(h, dir, cfg.Addr, cfg.Options)
	if err != nil {
		return nil, err
	}
	m.name = cfg.Name
	return m, nil
}

// backendConfig rejects a reload strategy for a backend, which is not reloadable (Mode and Servers are
// ignored).
func backendConfig(kind string, cfg Config) error {
	if cfg.Strategy != "" {
		return fmt.Errorf("%s: not reloadable (reload strategy %q)", kind, cfg.Strategy)
	}
	return nil
}

// service returns a driver's result as a Service, without turning a nil pointer into a non-nil interface.
func service[S Service](s S, err error) (Service, error) {
	if err != nil {
		return nil, err
	}
	return s, nil
}
