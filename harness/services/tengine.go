package services

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/faultlab/faultlab/harness"
)

// TengineOptions lists the option keys the tengine driver accepts:
//   - binary: path of a user-built tengine binary (default: tengine in PATH)
//   - worker_processes: number of workers (default 1) or "auto"
//   - check: true (default in http mode) for active health checks by the upstream check module
//   - check_interval, check_timeout: durations (defaults 3s, 1s)
//   - check_rise, check_fall: counts (defaults 2, 5)
//   - check_keepalive_requests: requests per check connection (default 1; above 1 the checker waits for
//     the server to close, so the TIME_WAIT stays on the backend)
//   - check_http_send: the check request, nginx-escaped (default "HEAD / HTTP/1.0\r\n\r\n")
//   - check_default_down: whether a server starts down until its first checks pass (default false; the
//     module's own default is true, under which every request fails with 502 from start until the first
//     check interval has passed, which would swamp what a scenario measures)
//   - reuseport: true or false (default false): `listen ... reuseport`, one SO_REUSEPORT listening socket
//     per worker, each with its own accept queue, instead of one socket all workers share. The master opens
//     them and, on a reload, hands each to the new worker of the same number (it matches the old cycle's
//     sockets by address), so it only matters with worker_processes above 1 (docs/reload.md measures it)
//   - reload_worker_processes: a number of workers; when set, every reload alternates the configuration
//     between it and worker_processes (the first reload switches to it), as a reload after a change of the
//     CPU count does with worker_processes auto. With reuseport, a reload to fewer workers closes the
//     surplus per-worker sockets.
//   - worker_shutdown_timeout: a duration (default: none, nginx's own default): how long an old worker may
//     finish its connections after a reload before it closes every one it still has and exits. Without it
//     an old worker lives as long as its last session (a stream proxy's idle sessions: proxy_timeout, 10m)
var TengineOptions = []string{"binary", "worker_processes", "check", "check_interval", "check_timeout",
	"check_rise", "check_fall", "check_keepalive_requests", "check_http_send", "check_default_down", "reuseport",
	"reload_worker_processes", "worker_shutdown_timeout"}

// tengineGet says how to get tengine: it is packaged nowhere the lab can reach, so it is built from its release
// tarball (scripts/tengine.sh).
const tengineGet = "build it with `make tengine` (from ../shared/vendor/tengine-3.1.0.tar.gz, or " +
	"TENGINE_SRC=<release tarball path or URL>)"

// TengineReload is tengine's reload strategy: `tengine -s reload`, a SIGHUP to the master, which starts new
// workers with the configuration read again and tells the old ones to finish their connections and quit.
const TengineReload = "reload"

// TengineStrategies lists tengine's reload strategies.
var TengineStrategies = []string{TengineReload}

// TengineConfig configures one tengine proxy: a server on Bind forwarding to Servers.
type TengineConfig struct {
	Name     string // default "tengine"
	Bind     netip.AddrPort
	Mode     string // "http" (default) or "tcp" (a stream proxy, without checks)
	Servers  []netip.AddrPort
	Strategy string // one of TengineStrategies; default reload
	Options  map[string]string
}

// Tengine is a tengine proxy inside a host. Tengine is not packaged anywhere the lab can reach: `make
// tengine` builds it from its release tarball and links it as /usr/local/sbin/tengine, or the binary option
// names one.
type Tengine struct {
	h       harness.NetnsHost
	cfg     TengineConfig
	dir     string
	bin     string
	version string
	conf    string
	proc    *harness.Process
	checks  bool // the upstream check module checks the servers
	// confs are the two configurations reloads alternate between (reload_worker_processes; else none), and
	// reloads counts the reloads asked for.
	confs   [][]byte
	reloads int
}

var (
	_ Service    = (*Tengine)(nil)
	_ Versioned  = (*Tengine)(nil)
	_ Reloadable = (*Tengine)(nil)
	_ Processes  = (*Tengine)(nil)
)

type tengineData struct {
	nginxMain
	Bind, Mode string
	Servers    []string
	Check      bool
	Reuseport  bool   // listen ... reuseport
	Alternate  string // reload_worker_processes: the worker count reloads alternate with ("": none)
	// ShutdownTimeoutMS is worker_shutdown_timeout in milliseconds (0: not set).
	ShutdownTimeoutMS int64
	// Check module settings, in the module's units (milliseconds).
	CheckIntervalMS, CheckTimeoutMS int64
	CheckRise, CheckFall            int
	CheckKeepaliveRequests          int
	CheckHTTPSend                   string
	CheckDefaultDown                bool
	// CheckShmMB sizes the check module's shared memory (check_shm_size): the 1 MB default holds a few
	// hundred servers; the lab gives 1 MB plus 8 KB per server.
	CheckShmMB int
}

var tengineTemplate = nginxStyle("tengine.conf", `# generated by faultlab: tengine proxying {{.Bind}} ({{.Mode}})
# run: tengine -p {{.Dir}}/ -c {{.Dir}}/tengine.conf -e {{.Dir}}/error.log
{{template "main" .}}
{{- if .ShutdownTimeoutMS}}
worker_shutdown_timeout {{.ShutdownTimeoutMS}}ms;
{{- end}}
{{if eq .Mode "http"}}
http {
    {{template "http_common" .}}
{{- if .Check}}
    check_shm_size {{.CheckShmMB}}m;
{{- end}}

    upstream backend {
{{- range .Servers}}
        server {{.}};
{{- end}}
{{- if .Check}}
        check interval={{.CheckIntervalMS}} rise={{.CheckRise}} fall={{.CheckFall}} timeout={{.CheckTimeoutMS}} type=http default_down={{.CheckDefaultDown}};
        check_keepalive_requests {{.CheckKeepaliveRequests}};
        check_http_send "{{.CheckHTTPSend}}";
        check_http_expect_alive http_2xx http_3xx;
{{- end}}
    }

    server {
        listen {{.Bind}} backlog=4096{{if .Reuseport}} reuseport{{end}};

        location / {
            proxy_pass http://backend;
        }
{{- if .Check}}

        location = /status {
            check_status;
        }
{{- end}}
    }
}
{{- else}}
stream {
    upstream backend {
{{- range .Servers}}
        server {{.}};
{{- end}}
    }

    server {
        listen {{.Bind}} backlog=4096{{if .Reuseport}} reuseport{{end}};
        proxy_pass backend;
    }
}
{{- end}}
`)

// NewTengine validates cfg and writes dir/tengine.conf (also when the binary is missing, so a user can
// take it to a machine that has Tengine), then looks for the binary: without one the error wraps
// harness.ErrUnsupported.
func NewTengine(h harness.NetnsHost, dir string, cfg TengineConfig) (*Tengine, error) {
	if cfg.Name == "" {
		cfg.Name = "tengine"
	}
	if cfg.Mode == "" {
		cfg.Mode = "http"
	}
	if cfg.Strategy == "" {
		cfg.Strategy = TengineReload
	}
	t := &Tengine{h: h, cfg: cfg}
	var err error
	if t.dir, err = prepareDir(dir); err != nil {
		return nil, err
	}
	data, err := tengineConfigData(cfg, t.dir)
	if err != nil {
		return nil, fmt.Errorf("tengine %s: %w", cfg.Name, err)
	}
	if err := prepareNginxDirs(t.dir); err != nil {
		return nil, fmt.Errorf("tengine %s: %w", cfg.Name, err)
	}
	t.checks = data.Check
	t.conf = filepath.Join(t.dir, "tengine.conf")
	if err := writeTemplate(t.conf, tengineTemplate, data); err != nil {
		return nil, fmt.Errorf("tengine %s: %w", cfg.Name, err)
	}
	if t.confs, err = alternateConfigs(data); err != nil {
		return nil, fmt.Errorf("tengine %s: %w", cfg.Name, err)
	}
	if t.bin, err = findBinary(h, "tengine", cfg.Options["binary"], tengineGet); err != nil {
		return nil, err
	}
	if t.version, err = nginxVersion(h, t.bin); err != nil {
		return nil, err
	}
	return t, nil
}

// tengineConfigData validates cfg and its options and turns them into template data.
func tengineConfigData(cfg TengineConfig, dir string) (tengineData, error) {
	var errs []error
	if cfg.Mode == "" {
		cfg.Mode = "http"
	}
	d := tengineData{Mode: cfg.Mode, Bind: cfg.Bind.String()}
	if cfg.Mode != "http" && cfg.Mode != "tcp" {
		errs = append(errs, fmt.Errorf("mode %q: must be http or tcp", cfg.Mode))
	}
	if cfg.Strategy != "" && !slices.Contains(TengineStrategies, cfg.Strategy) {
		errs = append(errs, fmt.Errorf("unknown reload strategy %q (allowed: %s)", cfg.Strategy,
			strings.Join(TengineStrategies, ", ")))
	}
	if !cfg.Bind.IsValid() || cfg.Bind.Port() == 0 {
		errs = append(errs, fmt.Errorf("bind address %q is not ip:port", cfg.Bind))
	}
	if len(cfg.Servers) == 0 {
		errs = append(errs, errors.New("no servers"))
	}
	for _, s := range cfg.Servers {
		d.Servers = append(d.Servers, s.String())
	}
	d.CheckShmMB = 1 + (len(cfg.Servers)*8+1023)/1024
	if err := checkOptionKeys("tengine", cfg.Options, TengineOptions); err != nil {
		return d, errors.Join(append(errs, err)...)
	}
	opts := cfg.Options
	workers, err := workersOption(opts)
	errs = append(errs, err)
	d.nginxMain = newNginxMain(dir, workers)
	d.Reuseport, err = boolOption(opts, "reuseport", false)
	errs = append(errs, err)
	if _, ok := opts["reload_worker_processes"]; ok {
		n, err := intOption(opts, "reload_worker_processes", 1, 1, 1024)
		d.Alternate = fmt.Sprint(n)
		errs = append(errs, err)
	}
	if _, ok := opts["worker_shutdown_timeout"]; ok {
		st, err := durationOption(opts, "worker_shutdown_timeout", 0)
		d.ShutdownTimeoutMS = st.Milliseconds()
		errs = append(errs, err)
	}
	d.Check, err = boolOption(opts, "check", cfg.Mode == "http")
	errs = append(errs, err)
	if d.Check && cfg.Mode == "tcp" {
		errs = append(errs, errors.New("option check: the upstream check module checks http upstreams only"))
	}
	interval, err := durationOption(opts, "check_interval", 3*time.Second)
	errs = append(errs, err)
	timeout, err := durationOption(opts, "check_timeout", time.Second)
	errs = append(errs, err)
	d.CheckIntervalMS, d.CheckTimeoutMS = interval.Milliseconds(), timeout.Milliseconds()
	d.CheckRise, err = intOption(opts, "check_rise", 2, 1, 1000)
	errs = append(errs, err)
	d.CheckFall, err = intOption(opts, "check_fall", 5, 1, 1000)
	errs = append(errs, err)
	d.CheckKeepaliveRequests, err = intOption(opts, "check_keepalive_requests", 1, 1, 1<<20)
	errs = append(errs, err)
	d.CheckDefaultDown, err = boolOption(opts, "check_default_down", false)
	errs = append(errs, err)
	d.CheckHTTPSend = `HEAD / HTTP/1.0\r\n\r\n`
	if v, ok := opts["check_http_send"]; ok {
		if v == "" || strings.ContainsAny(v, "\"\n") {
			errs = append(errs, fmt.Errorf("option check_http_send: %q must be one line without quotes", v))
		}
		d.CheckHTTPSend = v
	}
	return d, errors.Join(errs...)
}

// alternateConfigs renders the two configurations reloads alternate between when d has an alternate worker
// count: d's own, then d's with that count. None otherwise.
func alternateConfigs(d tengineData) ([][]byte, error) {
	if d.Alternate == "" {
		return nil, nil
	}
	var out [][]byte
	for _, workers := range []string{d.Workers, d.Alternate} {
		d.Workers = workers
		var b strings.Builder
		if err := tengineTemplate.Execute(&b, d); err != nil {
			return nil, fmt.Errorf("render tengine.conf: %w", err)
		}
		out = append(out, []byte(b.String()))
	}
	return out, nil
}

// durationOption parses opts[key] as a positive duration of whole milliseconds, or returns def.
func durationOption(opts map[string]string, key string, def time.Duration) (time.Duration, error) {
	v, ok := opts[key]
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < time.Millisecond || d%time.Millisecond != 0 {
		return 0, fmt.Errorf("option %s: %q is not a duration of whole milliseconds (e.g. 500ms, 3s)", key, v)
	}
	return d, nil
}

// Name is the service's name.
func (t *Tengine) Name() string { return t.cfg.Name }

// Version is the tengine version, e.g. "3.1.0".
func (t *Tengine) Version() string { return t.version }

// Strategy is the reload strategy.
func (t *Tengine) Strategy() string { return t.cfg.Strategy }

// ConfigPath is the generated configuration file.
func (t *Tengine) ConfigPath() string { return t.conf }

// PIDs lists the master and its workers while tengine runs (none otherwise).
func (t *Tengine) PIDs() []int { return masterPIDs(t.proc) }

// Start runs tengine in the foreground and returns when it accepts connections.
func (t *Tengine) Start(ctx context.Context) error {
	if t.proc != nil && !t.proc.Exited() {
		return fmt.Errorf("tengine %s: already started (pid %d)", t.cfg.Name, t.proc.PID)
	}
	logPath := filepath.Join(t.dir, t.cfg.Name+".log")
	off := logSize(logPath)
	args := []string{"-p", t.dir + "/", "-c", t.conf, "-e", filepath.Join(t.dir, "error.log")}
	// `tengine -t` first, inside the host (it binds the listeners too): a configuration the binary refuses
	// (a module it was built without, say) is an error quoting its [emerg] line rather than a process that
	// exits at once.
	if _, err := runIn(ctx, t.h, append([]string{t.bin, "-t"}, args...)...); err != nil {
		return fmt.Errorf("start tengine %s: configuration test failed: %w", t.cfg.Name, err)
	}
	p, err := t.h.Start(ctx, harness.ProcSpec{Name: t.cfg.Name, Dir: t.dir, LogDir: t.dir,
		Argv: append([]string{t.bin}, args...)})
	if err != nil {
		return fmt.Errorf("start tengine %s: %w", t.cfg.Name, err)
	}
	t.proc = p
	err = waitReady(ctx, p, off, func(ctx context.Context) error { return harness.WaitTCP(ctx, t.h, t.cfg.Bind) })
	if err != nil {
		_ = p.Stop(stopGrace)
		return fmt.Errorf("start tengine %s: %w", t.cfg.Name, err)
	}
	return nil
}

// Stop stops tengine and its workers (idempotent).
func (t *Tengine) Stop(ctx context.Context) error {
	if t.proc == nil {
		return nil
	}
	if err := t.proc.Stop(stopGraceFor(ctx)); err != nil {
		return fmt.Errorf("stop tengine %s: %w", t.cfg.Name, err)
	}
	return nil
}
