package loadgen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/faultlab/faultlab/results"
)

func TestClassify(t *testing.T) {
	sysErr := func(op string, e syscall.Errno) error { return &os.PathError{Op: op, Path: "tcp", Err: e} }
	tests := []struct {
		name    string
		err     error
		outcome results.Outcome
		phase   results.Phase
		errno   string
	}{
		{"ok", nil, results.OutcomeOK, results.PhaseDone, ""},
		{"refused", attemptError(results.PhaseConnect, os.NewSyscallError("connect", unix.ECONNREFUSED)),
			results.OutcomeRefused, results.PhaseConnect, "ECONNREFUSED"},
		{"reset_read", attemptError(results.PhaseRead, sysErr("read", unix.ECONNRESET)),
			results.OutcomeReset, results.PhaseRead, "ECONNRESET"},
		{"epipe_write", attemptError(results.PhaseWrite, sysErr("write", unix.EPIPE)),
			results.OutcomeReset, results.PhaseWrite, "EPIPE"},
		{"etimedout", attemptError(results.PhaseConnect, unix.ETIMEDOUT),
			results.OutcomeTimeout, results.PhaseConnect, "ETIMEDOUT"},
		{"deadline", attemptError(results.PhaseRead, &os.PathError{Op: "read", Path: "tcp", Err: os.ErrDeadlineExceeded}),
			results.OutcomeTimeout, results.PhaseRead, ""},
		{"ctx_deadline", &AttemptError{Phase: results.PhaseConnect, Err: context.DeadlineExceeded},
			results.OutcomeTimeout, results.PhaseConnect, ""},
		{"addr_unavailable", attemptError(results.PhaseConnect, fmt.Errorf("connect: %w", unix.EADDRNOTAVAIL)),
			results.OutcomeAddrNotAvail, results.PhaseConnect, "EADDRNOTAVAIL"},
		{"proto", protoError("HTTP/1.0 503 Service Unavailable"), results.OutcomeProtoError, results.PhaseRead, ""},
		{"emfile", attemptError(results.PhaseConnect, fmt.Errorf("socket: %w", unix.EMFILE)),
			results.OutcomeOther, results.PhaseConnect, "EMFILE"},
		{"canceled", &AttemptError{Phase: results.PhaseRead, Err: context.Canceled},
			results.OutcomeOther, results.PhaseRead, ""},
		{"bare_errno", fmt.Errorf("x: %w", unix.ECONNRESET), results.OutcomeReset, "", "ECONNRESET"},
		{"plain", errors.New("boom"), results.OutcomeOther, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, p, e := Classify(tt.err)
			if o != tt.outcome || p != tt.phase || e != tt.errno {
				t.Errorf("Classify(%v) = %q %q %q, want %q %q %q", tt.err, o, p, e, tt.outcome, tt.phase, tt.errno)
			}
		})
	}
}

func TestSetOutcomeDetail(t *testing.T) {
	var rec results.Record
	SetOutcome(&rec, protoError("HTTP/1.0 503 Service Unavailable"))
	if rec.Detail != "HTTP/1.0 503 Service Unavailable" || rec.Outcome != results.OutcomeProtoError {
		t.Errorf("proto: %+v", rec)
	}
	SetOutcome(&rec, nil)
	if rec.Detail != "" || rec.Outcome != results.OutcomeOK || rec.Errno != "" {
		t.Errorf("ok: %+v", rec)
	}
	if got := ErrnoName(syscall.Errno(4000)); got != "errno 4000" {
		t.Errorf("unnamed errno: %q", got)
	}
}
