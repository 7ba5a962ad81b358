// Package results holds the lab's record types, their summaries and statistics, the comparison of cells and the
// renderers. It imports nothing of the project and needs no privileges.
package results

import "time"

// Outcome classifies one connection attempt. The set is closed: every attempt gets exactly one.
type Outcome string

const (
	OutcomeOK           Outcome = "ok"
	OutcomeRefused      Outcome = "refused"          // ECONNREFUSED (an RST answering the SYN)
	OutcomeReset        Outcome = "reset"            // ECONNRESET or EPIPE after the handshake
	OutcomeTimeout      Outcome = "timeout"          // no answer within the workload's timeout
	OutcomeAddrNotAvail Outcome = "addr_unavailable" // EADDRNOTAVAIL: no free source port
	OutcomeProtoError   Outcome = "proto_error"      // the peer answered, but not as the protocol says
	// OutcomeClosed: the peer closed (FIN) a connection the client meant to keep open (the holding
	// workloads: idle, keepalive, nofin); Total is when the FIN came.
	OutcomeClosed Outcome = "closed"
	OutcomeOther  Outcome = "other"
)

// Outcomes lists every outcome in report order.
var Outcomes = []Outcome{OutcomeOK, OutcomeRefused, OutcomeReset, OutcomeTimeout, OutcomeAddrNotAvail,
	OutcomeProtoError, OutcomeClosed, OutcomeOther}

// Phase says where in its life an attempt ended (for failures: where it failed).
type Phase string

const (
	PhaseConnect   Phase = "connect"
	PhaseWrite     Phase = "write"
	PhaseRead      Phase = "read"
	PhaseHandshake Phase = "handshake" // application-level handshake (MySQL greeting/auth)
	PhaseDone      Phase = "done"      // completed
)

// Record is one connection attempt, written as one JSON line. Intended (the pacer's schedule) and Start (when
// the generator really began) are nanoseconds since the cell's start. Connect, FirstByte and Total are
// durations in nanoseconds measured from Intended, so a stalled generator shows up as latency rather than
// hiding failures; zero means "not reached".
type Record struct {
	Cell      string  `json:"cell"`
	Rep       int     `json:"rep"`
	Seq       uint64  `json:"seq"`
	Intended  int64   `json:"intended_ns"`
	Start     int64   `json:"start_ns"` // when the generator actually began the attempt
	Connect   int64   `json:"connect_ns"`
	FirstByte int64   `json:"first_byte_ns"`
	Total     int64   `json:"total_ns"`
	Outcome   Outcome `json:"outcome"`
	Phase     Phase   `json:"phase"`
	Errno     string  `json:"errno,omitempty"` // symbolic, e.g. "ECONNRESET"
	Detail    string  `json:"detail,omitempty"`
	LocalPort int     `json:"local_port,omitempty"`
	BytesIn   int64   `json:"bytes_in"`
	BytesOut  int64   `json:"bytes_out"`
}

// Failed reports whether the attempt did not complete successfully.
func (r *Record) Failed() bool { return r.Outcome != OutcomeOK }

// ReloadEvent is one reload performed by a reload storm, one JSON line in reloads.jsonl. Times are
// nanoseconds relative to the cell's start.
type ReloadEvent struct {
	Cell     string `json:"cell"`
	Rep      int    `json:"rep"`
	Seq      int    `json:"seq"`
	Start    int64  `json:"start_ns"`
	End      int64  `json:"end_ns"`
	Strategy string `json:"strategy"`
	OK       bool   `json:"ok"`
	Error    string `json:"error,omitempty"`
	// Procs is the number of proxy processes alive right after the reload completed.
	Procs int `json:"procs"`
}

// ProcSample is the number of processes of a service alive at a moment (states/procs series).
type ProcSample struct {
	T     int64 `json:"t_ns"`
	Procs int   `json:"procs"`
	// OldestAge is the age of the oldest process still alive.
	OldestAge time.Duration `json:"oldest_age_ns"`
}
