package loadgen

import (
	"context"
	"errors"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/faultlab/faultlab/results"
)

// ProtocolError says the peer answered, but not as the protocol requires (bad status line, non-200 status,
// short response). Detail is what goes into the record, e.g. the status line.
type ProtocolError struct {
	Detail string
}

func (e *ProtocolError) Error() string { return "protocol error: " + e.Detail }

// Classify maps an attempt's error to its outcome, the phase it failed in and the symbolic errno ("ECONNRESET";
// empty when the error carries none). A nil error is OutcomeOK in PhaseDone. The phase comes from an
// *AttemptError in the chain; an error without one reports an empty phase.
func Classify(err error) (results.Outcome, results.Phase, string) {
	if err == nil {
		return results.OutcomeOK, results.PhaseDone, ""
	}
	var phase results.Phase
	var errno syscall.Errno
	var ae *AttemptError
	if errors.As(err, &ae) {
		phase, errno = ae.Phase, ae.Errno
	}
	if errno == 0 {
		errors.As(err, &errno)
	}
	return outcomeOf(err, errno), phase, ErrnoName(errno)
}

// outcomeOf is the outcome class of err whose errno (0 if none) is errno.
func outcomeOf(err error, errno syscall.Errno) results.Outcome {
	var pe *ProtocolError
	switch {
	case errors.As(err, &pe):
		return results.OutcomeProtoError
	case errors.Is(err, ErrPeerClosed):
		return results.OutcomeClosed
	case errno == unix.ECONNREFUSED:
		return results.OutcomeRefused
	case errno == unix.ECONNRESET || errno == unix.EPIPE:
		return results.OutcomeReset
	case errno == unix.ETIMEDOUT || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return results.OutcomeTimeout
	case errno == unix.EADDRNOTAVAIL:
		return results.OutcomeAddrNotAvail
	}
	return results.OutcomeOther
}

// ErrnoName is the symbolic name of errno ("ECONNRESET"), "errno N" for an unnamed one, empty for 0.
func ErrnoName(errno syscall.Errno) string {
	if errno == 0 {
		return ""
	}
	if name := unix.ErrnoName(errno); name != "" {
		return name
	}
	return "errno " + strconv.Itoa(int(errno))
}

// SetOutcome fills rec's Outcome, Phase, Errno and Detail from an attempt's error. Detail is the protocol
// error's detail for proto_error, the error text for other failures, empty on success.
func SetOutcome(rec *results.Record, err error) {
	rec.Outcome, rec.Phase, rec.Errno = Classify(err)
	rec.Detail = ""
	if err == nil {
		return
	}
	var pe *ProtocolError
	if errors.As(err, &pe) {
		rec.Detail = pe.Detail
		return
	}
	rec.Detail = err.Error()
}
