package loadgen

// The MySQL client protocol is implemented here rather than taken from github.com/go-sql-driver/mysql. The
// driver is built for database/sql: it pools connections, folds connect, greeting and authentication into one
// Connect call, and on an I/O failure returns driver.ErrBadConn ("invalid connection") after logging the real
// error, so the errno (ECONNRESET, EADDRNOTAVAIL) and the phase are lost. Its dialer hook is a process-wide
// registry (RegisterDialContext). The lab needs one record per attempt with the phase, the errno and the
// server's error code, timed from the attempt's intended start, and sockets from the lab's Dialer. The subset a
// client needs for "authenticate, SELECT 1, quit" is small: packets (3-byte length, sequence number), the v10
// greeting, HandshakeResponse41 with mysql_native_password (MariaDB 10.11's plugin for a user created with
// IDENTIFIED BY, verified against the packaged server), an auth switch to that same plugin, OK/ERR/EOF packets
// and a text result set.
//
// Outcome mapping (phase: handshake for the greeting and authentication, write for sending the query or QUIT,
// read for the result set):
//   - an ERR packet (a greeting that is an error, e.g. "1040 Too many connections", failed authentication
//     "1045 Access denied ...", a failed query): proto_error, Detail "<code> <message>";
//   - EOF before the exchange is complete (the peer closed with a FIN: a proxy that could not reach its server,
//     a server that dropped the client): proto_error, Detail "lost connection: EOF reading <what>", as HTTP10's
//     empty response;
//   - an RST (ECONNRESET, EPIPE): reset; a deadline: timeout; EADDRNOTAVAIL: addr_unavailable (Classify);
//   - anything malformed or unsupported (another auth plugin): proto_error saying what.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/faultlab/faultlab/results"
)

// MySQL is the workload of a short-lived MySQL client: connect, read the greeting, authenticate with
// mysql_native_password, run Query and read its result, send COM_QUIT and close at once without waiting for the
// server, as client libraries do. The client is the active closer, so a proxy in between mostly closes its
// server side first and keeps the TIME_WAIT toward the server (pathology 4); the server, which closes on
// COM_QUIT, wins that race for some connections (3-15% through haproxy 2.6 to MariaDB 10.11 in the lab).
//
// The zero value logs in as the lab's user (faultlab, password faultlab) and runs "SELECT 1".
type MySQL struct {
	User, Password string // an empty User means faultlab/faultlab
	Query          string // default "SELECT 1"
}

var (
	_ Workload = MySQL{}
	_ Opener   = MySQL{}
)

// Protocol constants (MySQL client/server protocol).
const (
	clientLongPassword   = 1 << 0
	clientProtocol41     = 1 << 9
	clientTransactions   = 1 << 13
	clientSecureConn     = 1 << 15
	clientPluginAuth     = 1 << 19
	mysqlCapabilities    = clientLongPassword | clientProtocol41 | clientTransactions | clientSecureConn | clientPluginAuth
	comQuit              = 0x01
	comQuery             = 0x03
	nativePassword       = "mysql_native_password"
	charsetUTF8MB4       = 45
	maxMySQLPacket       = 1<<24 - 1
	mysqlPacketKeep      = 1 << 20 // longer packets are a protocol error here
	mysqlDefaultQuery    = "SELECT 1"
	mysqlDefaultUser     = "faultlab"
	mysqlDefaultPassword = "faultlab"
)

func (m MySQL) credentials() (string, string) {
	if m.User == "" {
		return mysqlDefaultUser, mysqlDefaultPassword
	}
	return m.User, m.Password
}

func (m MySQL) query() string {
	if m.Query == "" {
		return mysqlDefaultQuery
	}
	return m.Query
}

// Attempt runs one short connection and fills rec.
func (m MySQL) Attempt(ctx context.Context, d *Dialer, dst netip.AddrPort, rec *results.Record) {
	t0 := IntendedTime(ctx)
	err := m.exchange(ctx, d, dst, rec)
	rec.Total = sinceNS(t0)
	SetOutcome(rec, err)
}

func (m MySQL) exchange(ctx context.Context, d *Dialer, dst netip.AddrPort, rec *results.Record) error {
	s, err := m.open(ctx, d, dst, rec)
	if err != nil {
		return err
	}
	defer s.c.Close()
	stop := bindContext(ctx, s.c)
	defer stop()
	if err := s.query(ctx, m.query()); err != nil {
		return err
	}
	return s.quit(ctx)
}

// open dials and authenticates; on success the connection is open with ctx's deadline set.
func (m MySQL) open(ctx context.Context, d *Dialer, dst netip.AddrPort, rec *results.Record) (*mysqlSession, error) {
	t0 := IntendedTime(ctx)
	c, err := dialAttempt(ctx, t0, d, dst, rec)
	if err != nil {
		return nil, err
	}
	s := &mysqlSession{c: c, q: m.query()}
	s.in = bufio.NewReaderSize(countingReader{s}, 4096)
	s.bind(t0, rec)
	stop := bindContext(ctx, c)
	user, pass := m.credentials()
	err = s.handshake(ctx, user, pass)
	stop()
	if err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

// mysqlSession is one client connection; rec and t0 are the attempt its I/O is counted for.
type mysqlSession struct {
	c   *Conn
	in  *bufio.Reader
	q   string
	seq byte
	rec *results.Record
	t0  time.Time
}

// countingReader counts bytes read from the socket into the current attempt's record.
type countingReader struct{ s *mysqlSession }

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.s.c.Read(p)
	if n > 0 {
		if r.s.rec.FirstByte == 0 {
			r.s.rec.FirstByte = sinceNS(r.s.t0)
		}
		r.s.rec.BytesIn += int64(n)
	}
	return n, err
}

func (s *mysqlSession) bind(t0 time.Time, rec *results.Record) { s.t0, s.rec = t0, rec }

// readPacket reads one packet of the current exchange; what names it in errors.
func (s *mysqlSession) readPacket(ctx context.Context, phase results.Phase, what string) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(s.in, hdr[:]); err != nil {
		return nil, s.readError(ctx, phase, what, err)
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if hdr[3] != s.seq {
		return nil, mysqlProto(phase, fmt.Sprintf("%s: packet sequence %d, want %d", what, hdr[3], s.seq))
	}
	s.seq++
	if n > mysqlPacketKeep {
		return nil, mysqlProto(phase, fmt.Sprintf("%s: packet of %d bytes", what, n))
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(s.in, p); err != nil {
		return nil, s.readError(ctx, phase, what, err)
	}
	return p, nil
}

func (s *mysqlSession) readError(ctx context.Context, phase results.Phase, what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return mysqlProto(phase, "lost connection: EOF reading "+what)
	}
	return ioError(ctx, phase, err)
}

// writePacket sends payload as one packet with the next sequence number.
func (s *mysqlSession) writePacket(ctx context.Context, phase results.Phase, payload []byte) error {
	if len(payload) > maxMySQLPacket {
		return mysqlProto(phase, "packet too long")
	}
	b := make([]byte, 4, 4+len(payload))
	b[0], b[1], b[2], b[3] = byte(len(payload)), byte(len(payload)>>8), byte(len(payload)>>16), s.seq
	s.seq++
	n, err := s.c.Write(append(b, payload...))
	s.rec.BytesOut += int64(n)
	if err != nil {
		return ioError(ctx, phase, err)
	}
	return nil
}

func mysqlProto(phase results.Phase, detail string) error {
	return &AttemptError{Phase: phase, Err: &ProtocolError{Detail: detail}}
}

// serverError turns an ERR packet (0xff, code, optional '#' and SQLSTATE, message) into a proto_error.
func serverError(phase results.Phase, p []byte) error {
	if len(p) < 3 {
		return mysqlProto(phase, "short ERR packet")
	}
	code := binary.LittleEndian.Uint16(p[1:3])
	msg := p[3:]
	if len(msg) >= 6 && msg[0] == '#' {
		msg = msg[6:]
	}
	return mysqlProto(phase, fmt.Sprintf("%d %s", code, printable(msg)))
}

// handshake reads the greeting, sends HandshakeResponse41 and reads the result, following an auth switch to
// mysql_native_password.
func (s *mysqlSession) handshake(ctx context.Context, user, pass string) error {
	const ph = results.PhaseHandshake
	p, err := s.readPacket(ctx, ph, "greeting")
	if err != nil {
		return err
	}
	g, err := parseGreeting(p)
	if err != nil {
		return err
	}
	// The seed is the same for every plugin: with another default plugin the server accepts a native token
	// for a native user, and asks the others to switch.
	if err := s.writePacket(ctx, ph, handshakeResponse(user, nativeToken(pass, g.seed))); err != nil {
		return err
	}
	for range 2 {
		p, err := s.readPacket(ctx, ph, "authentication result")
		if err != nil {
			return err
		}
		switch {
		case len(p) > 0 && p[0] == 0x00:
			return nil
		case len(p) > 0 && p[0] == 0xff:
			return serverError(ph, p)
		case len(p) > 0 && p[0] == 0xfe: // AuthSwitchRequest: plugin name NUL, challenge (NUL-terminated)
			plugin, data, _ := bytes.Cut(p[1:], []byte{0})
			if string(plugin) != nativePassword {
				return mysqlProto(ph, fmt.Sprintf("server asks for auth plugin %q, only %s is supported",
					printable(plugin), nativePassword))
			}
			if err := s.writePacket(ctx, ph, nativeToken(pass, bytes.TrimSuffix(data, []byte{0}))); err != nil {
				return err
			}
		default:
			return mysqlProto(ph, fmt.Sprintf("unexpected authentication reply %q", clip(p)))
		}
	}
	return mysqlProto(ph, "authentication did not finish after an auth switch")
}

type greeting struct {
	version string
	seed    []byte
	plugin  string
}

// parseGreeting parses the initial handshake packet (protocol version 10) or the ERR packet a server sends
// instead (too many connections, host blocked).
func parseGreeting(p []byte) (greeting, error) {
	const ph = results.PhaseHandshake
	var g greeting
	if len(p) > 0 && p[0] == 0xff {
		return g, serverError(ph, p)
	}
	if len(p) == 0 || p[0] != 10 {
		return g, mysqlProto(ph, fmt.Sprintf("greeting: protocol version %q, want 10", clip(p[:min(len(p), 1)])))
	}
	version, rest, ok := bytes.Cut(p[1:], []byte{0})
	// connection id 4, seed part 1 8, filler 1, capabilities 2, charset 1, status 2, capabilities 2,
	// seed length 1, reserved 10: 31 bytes.
	if !ok || len(rest) < 31 {
		return g, mysqlProto(ph, "greeting: truncated")
	}
	g.version = string(version)
	g.seed = append([]byte(nil), rest[4:12]...)
	caps := uint32(binary.LittleEndian.Uint16(rest[13:15])) | uint32(binary.LittleEndian.Uint16(rest[18:20]))<<16
	if caps&clientProtocol41 == 0 || caps&clientSecureConn == 0 {
		return g, mysqlProto(ph, fmt.Sprintf("greeting: server %s lacks protocol 4.1 authentication", printable(version)))
	}
	// Seed part 2: max(13, seed length - 8) bytes, the last a NUL; then the plugin name.
	n := max(13, int(rest[20])-8)
	if len(rest) < 31+n {
		return g, mysqlProto(ph, "greeting: truncated seed")
	}
	g.seed = append(g.seed, rest[31:31+n-1]...)
	if caps&clientPluginAuth != 0 {
		plugin, _, _ := bytes.Cut(rest[31+n:], []byte{0})
		g.plugin = string(plugin)
	}
	return g, nil
}

// nativeToken is mysql_native_password's answer: SHA1(pass) XOR SHA1(seed + SHA1(SHA1(pass))); empty for an
// empty password.
func nativeToken(pass string, seed []byte) []byte {
	if pass == "" {
		return nil
	}
	h1 := sha1.Sum([]byte(pass))
	h2 := sha1.Sum(h1[:])
	h := sha1.New()
	h.Write(seed)
	h.Write(h2[:])
	tok := h.Sum(nil)
	for i := range tok {
		tok[i] ^= h1[i]
	}
	return tok
}

// handshakeResponse builds HandshakeResponse41 without a database.
func handshakeResponse(user string, token []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, mysqlCapabilities)
	b = binary.LittleEndian.AppendUint32(b, maxMySQLPacket)
	b = append(b, charsetUTF8MB4)
	b = append(b, make([]byte, 23)...)
	b = append(append(b, user...), 0)
	b = append(append(b, byte(len(token))), token...)
	return append(append(b, nativePassword...), 0)
}

// query runs q with COM_QUERY and reads the reply: OK, ERR, or a text result set (column count, column
// definitions, EOF, rows, EOF).
func (s *mysqlSession) query(ctx context.Context, q string) error {
	s.seq = 0
	if err := s.writePacket(ctx, results.PhaseWrite, append([]byte{comQuery}, q...)); err != nil {
		return err
	}
	const ph = results.PhaseRead
	p, err := s.readPacket(ctx, ph, "query result")
	if err != nil {
		return err
	}
	switch {
	case len(p) == 0:
		return mysqlProto(ph, "empty query result packet")
	case p[0] == 0x00:
		return nil // a statement without a result set
	case p[0] == 0xff:
		return serverError(ph, p)
	case p[0] >= 0xfb: // LOCAL INFILE request or a multi-byte column count: not something the lab asks for
		return mysqlProto(ph, fmt.Sprintf("unexpected query result packet %q", clip(p)))
	}
	columns := int(p[0])
	for range columns {
		if _, err := s.readPacket(ctx, ph, "column definition"); err != nil {
			return err
		}
	}
	if p, err = s.readPacket(ctx, ph, "end of columns"); err != nil {
		return err
	}
	if !isEOF(p) {
		return mysqlProto(ph, fmt.Sprintf("after %d column definitions: %q, want EOF", columns, clip(p)))
	}
	for {
		if p, err = s.readPacket(ctx, ph, "rows"); err != nil {
			return err
		}
		switch {
		case isEOF(p):
			return nil
		case len(p) > 0 && p[0] == 0xff:
			return serverError(ph, p)
		}
	}
}

// isEOF reports whether p is an EOF packet (0xfe, shorter than 9 bytes).
func isEOF(p []byte) bool { return len(p) > 0 && p[0] == 0xfe && len(p) < 9 }

// quit sends COM_QUIT; the caller closes the socket right after, without waiting for the server.
func (s *mysqlSession) quit(ctx context.Context) error {
	s.seq = 0
	return s.writePacket(ctx, results.PhaseWrite, []byte{comQuit})
}
