package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/faultlab/faultlab/results"
)

// Session is one open connection of a protocol that can run several exchanges over it (a MySQL session).
type Session interface {
	// Exchange runs one exchange (MySQL: the query and its result) and counts its bytes and times into rec,
	// timed from IntendedTime(ctx). After a failure the session is closed and must not be used again.
	Exchange(ctx context.Context, rec *results.Record) error
	LocalPort() int
	// Close ends the session politely (MySQL: COM_QUIT) and closes the connection.
	Close() error
}

// Opener opens sessions: it connects with d and runs the protocol's opening (MySQL: greeting and
// authentication), filling rec's Connect, FirstByte, LocalPort and byte counts as a short attempt does.
type Opener interface {
	Open(ctx context.Context, d *Dialer, dst netip.AddrPort, rec *results.Record) (Session, error)
}

// ErrPersistentClosed is the error of an attempt on a closed Persistent.
var ErrPersistentClosed = errors.New("persistent connections closed")

// Persistent is the persistent-connections workload: it keeps up to conns (NewPersistent) sessions open and runs one
// exchange per attempt over a free one, so the load opens no new connection per attempt and leaves no TIME_WAIT behind.
// Run paces it like any workload (one attempt per tick, open loop).
//
// A slot holds a session or nothing: an attempt takes a free slot (waiting for one until its deadline: a
// timeout in phase connect, Detail "no free connection"), opens a session there when it has none (that
// attempt's record then covers connect and handshake as well, with Connect the TCP connect time), and runs one
// exchange. For a reused session Connect is the time the attempt waited for its slot and LocalPort the
// session's source port, so the records show the reuse. A failed session is dropped; the next attempt on its
// slot opens a new one. Close ends every session.
type Persistent struct {
	opener Opener
	slots  chan Session // nil entries are free slots without a session
	n      int
	open   atomic.Int64
	closed atomic.Bool
}

var _ Workload = (*Persistent)(nil)

// NewPersistent returns a Persistent of conns sessions opened by o (e.g. MySQL{}).
func NewPersistent(o Opener, conns int) (*Persistent, error) {
	if conns < 1 {
		return nil, fmt.Errorf("persistent connections: %d connections, want at least 1", conns)
	}
	if o == nil {
		return nil, errors.New("persistent connections: no opener")
	}
	p := &Persistent{opener: o, slots: make(chan Session, conns), n: conns}
	for range conns {
		p.slots <- nil
	}
	return p, nil
}

// Attempt runs one exchange over a free session and fills rec.
func (p *Persistent) Attempt(ctx context.Context, d *Dialer, dst netip.AddrPort, rec *results.Record) {
	t0 := IntendedTime(ctx)
	err := p.attempt(ctx, d, dst, rec)
	rec.Total = sinceNS(t0)
	SetOutcome(rec, err)
}

func (p *Persistent) attempt(ctx context.Context, d *Dialer, dst netip.AddrPort, rec *results.Record) error {
	if p.closed.Load() {
		return &AttemptError{Phase: results.PhaseConnect, Err: ErrPersistentClosed}
	}
	var s Session
	select {
	case s = <-p.slots:
	case <-ctx.Done():
		return &AttemptError{Phase: results.PhaseConnect,
			Err: fmt.Errorf("no free connection of %d: %w", p.n, ctx.Err())}
	}
	defer func() { p.slots <- s }()
	if p.closed.Load() { // Close ran while this attempt waited
		return &AttemptError{Phase: results.PhaseConnect, Err: ErrPersistentClosed}
	}
	if s == nil {
		var err error
		if s, err = p.opener.Open(ctx, d, dst, rec); err != nil {
			s = nil
			return err
		}
		p.open.Add(1)
	} else {
		rec.Connect = sinceNS(IntendedTime(ctx))
	}
	if err := s.Exchange(ctx, rec); err != nil {
		s = nil
		p.open.Add(-1)
		return err
	}
	return nil
}

// Sessions is the number of sessions open now, those in use included.
func (p *Persistent) Sessions() int { return int(p.open.Load()) }

// Close waits for the attempts in flight (until ctx ends), then closes every session. Later attempts fail.
func (p *Persistent) Close(ctx context.Context) error {
	p.closed.Store(true)
	var errs []error
	for i := range p.n {
		select {
		case s := <-p.slots:
			if s != nil {
				errs = append(errs, s.Close())
				p.open.Add(-1)
			}
		case <-ctx.Done():
			return fmt.Errorf("close persistent connections: %d of %d still in use: %w", p.n-i, p.n, ctx.Err())
		}
	}
	for range p.n {
		p.slots <- nil
	}
	return errors.Join(errs...)
}

// MySQL sessions: MySQL is an Opener, its connection a Session running MySQL.Query per exchange.

// Open connects and authenticates, for Persistent: the returned session runs Query on each Exchange.
func (m MySQL) Open(ctx context.Context, d *Dialer, dst netip.AddrPort, rec *results.Record) (Session, error) {
	s, err := m.open(ctx, d, dst, rec)
	if err != nil {
		return nil, err
	}
	s.c.SetDeadline(time.Time{})
	return s, nil
}

// Exchange runs the session's query over the open connection, counting into rec. On failure the session is
// closed.
func (s *mysqlSession) Exchange(ctx context.Context, rec *results.Record) error {
	s.bind(IntendedTime(ctx), rec)
	rec.LocalPort = s.c.LocalPort()
	stop := bindContext(ctx, s.c)
	err := s.query(ctx, s.q)
	stop()
	if err != nil {
		s.c.Close()
		return err
	}
	return s.c.SetDeadline(time.Time{})
}

// LocalPort is the connection's source port.
func (s *mysqlSession) LocalPort() int { return s.c.LocalPort() }

// Close sends COM_QUIT (within a second) and closes the connection.
func (s *mysqlSession) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.bind(time.Now(), new(results.Record))
	stop := bindContext(ctx, s.c)
	err := s.quit(ctx)
	stop()
	return errors.Join(err, s.c.Close())
}
