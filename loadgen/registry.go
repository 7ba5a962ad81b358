package loadgen

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// WorkloadConfig is the one constructor input of every workload.
type WorkloadConfig struct {
	// Persistent > 0 keeps that many connections open and runs one exchange per attempt over them
	// (NewPersistent), for the workloads whose protocol allows it.
	Persistent int
	// Options are the workload's own settings (see each entry's Doc); an unknown key is an error.
	Options map[string]string
}

// WorkloadEntry describes a workload: what it does, what its target must speak, and how to build it.
type WorkloadEntry struct {
	Kind     string
	Doc      string
	Protocol string // what the target must speak: "http" or "mysql"; "" for any (TCP only, or optional HTTP)
	// Persistent says whether WorkloadConfig.Persistent > 0 is supported.
	Persistent bool
	New        func(cfg WorkloadConfig) (Workload, error)
}

// Closer is a workload that holds connections (Persistent): Close ends them once the load is over.
type Closer interface {
	Close(ctx context.Context) error
}

var _ Closer = (*Persistent)(nil)

// Workloads maps a workload kind (a scenario's workload.kind) to its entry.
var Workloads = map[string]WorkloadEntry{
	"http": {Kind: "http", Protocol: "http", New: newHTTP,
		Doc: "a new connection per attempt: GET / HTTP/1.0, read to EOF, close (option host: the Host header)"},
	"check": {Kind: "check", Protocol: "http", New: newCheck,
		Doc: "an active health check: HEAD / HTTP/1.0 on a new connection, then close once the response is in " +
			"(option close: response, the default) or after the server's FIN (close: eof)"},
	"idle": {Kind: "idle", New: newIdle,
		Doc: "a long-lived TCP client: connect, send nothing, hold the connection (option hold: a duration, " +
			"default the attempt's timeout); closes at once on the peer's FIN (outcome closed)"},
	"keepalive": {Kind: "keepalive", Protocol: "http", New: newKeepAlive,
		Doc: "an HTTP/1.1 keep-alive client: one request, then idle on the connection (options hold, host); " +
			"closes at once on the peer's FIN (outcome closed)"},
	"halfclose": {Kind: "halfclose", New: newHalfClose,
		Doc: "a half-closing client: optional request (option request: none|http), then its FIN, then reads " +
			"until the peer's FIN (ok) or the hold's end (timeout) (options hold, request, host)"},
	"nofin": {Kind: "nofin", New: newNoFIN,
		Doc: "a client that never answers a FIN: optional request (option request: none|http), then holds the " +
			"socket open until the hold's end even after the peer's FIN (options hold, request, host)"},
	"download": {Kind: "download", Protocol: "http", New: newDownload,
		Doc: "a new connection per attempt: GET /f/<size> HTTP/1.0 (nginx's files option), read to EOF, close; " +
			"option sizes: the mix of files and shares, e.g. \"16k:0.5,1m:0.5\" (option host: the Host header)"},
	"mysql": {Kind: "mysql", Protocol: "mysql", Persistent: true, New: newMySQL,
		Doc: "a new connection per attempt: greeting, login, query, COM_QUIT, close; with persistent: n, " +
			"one query per attempt over n open connections (options user, password, query)"},
}

// LookupWorkload returns the entry of kind; an unknown kind is an error listing the known ones.
func LookupWorkload(kind string) (WorkloadEntry, error) {
	if e, ok := Workloads[kind]; ok {
		return e, nil
	}
	return WorkloadEntry{}, fmt.Errorf("unknown workload kind %q (known: %s)", kind,
		strings.Join(slices.Sorted(maps.Keys(Workloads)), ", "))
}

func newHTTP(cfg WorkloadConfig) (Workload, error) {
	if err := checkWorkloadOptions("http", cfg.Options, "host"); err != nil {
		return nil, err
	}
	if cfg.Persistent != 0 {
		return nil, fmt.Errorf("http: persistent %d: HTTP/1.0 closes the connection after each response, "+
			"so it has no persistent connections", cfg.Persistent)
	}
	return HTTP10{Host: cfg.Options["host"]}, nil
}

func newMySQL(cfg WorkloadConfig) (Workload, error) {
	if err := checkWorkloadOptions("mysql", cfg.Options, "user", "password", "query"); err != nil {
		return nil, err
	}
	m := MySQL{User: cfg.Options["user"], Password: cfg.Options["password"], Query: cfg.Options["query"]}
	if m.User == "" && m.Password != "" {
		return nil, errors.New("mysql: option password without user")
	}
	switch {
	case cfg.Persistent < 0:
		return nil, fmt.Errorf("mysql: persistent %d: want 0 (a connection per attempt) or more", cfg.Persistent)
	case cfg.Persistent > 0:
		p, err := NewPersistent(m, cfg.Persistent)
		if err != nil {
			return nil, fmt.Errorf("mysql: %w", err)
		}
		return p, nil
	}
	return m, nil
}

// checkWorkloadOptions rejects option keys outside allowed, naming them all and listing the allowed ones.
func checkWorkloadOptions(kind string, opts map[string]string, allowed ...string) error {
	var unknown []string
	for k := range opts {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	slices.Sort(allowed)
	return fmt.Errorf("%s: unknown option(s) %s (allowed: %s)", kind, strings.Join(unknown, ", "),
		strings.Join(allowed, ", "))
}
