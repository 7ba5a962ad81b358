package loadgen

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/faultlab/faultlab/results"
)

// fakeMySQL is a loopback MySQL server speaking just enough of the protocol to test the client. The zero value
// greets with mysql_native_password, accepts faultlab/faultlab and answers any query with one row.
type fakeMySQL struct {
	plugin   string // advertised in the greeting; another than native makes the server switch
	greetErr string // an ERR packet instead of the greeting, e.g. "\x10\x04Too many connections"
	queryErr bool   // answer the query with ERR 1064
	after    string // "greeting": close after sending the greeting; "auth": reset after reading the response
	silent   bool   // never greet
	quits    chan bool
}

// mysqlPkt is one framed packet.
func mysqlPkt(seq byte, payload []byte) []byte {
	return append([]byte{byte(len(payload)), byte(len(payload) >> 8), byte(len(payload) >> 16), seq}, payload...)
}

func readPkt(c net.Conn) ([]byte, byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return nil, 0, err
	}
	p := make([]byte, int(h[0])|int(h[1])<<8|int(h[2])<<16)
	_, err := io.ReadFull(c, p)
	return p, h[3], err
}

var fakeSeed = []byte("abcdefghijklmnopqrst")

func (f *fakeMySQL) greeting() []byte {
	plugin := f.plugin
	if plugin == "" {
		plugin = nativePassword
	}
	caps := uint32(mysqlCapabilities)
	b := append([]byte{10}, "10.11.0-fake\x00"...)
	b = binary.LittleEndian.AppendUint32(b, 7)
	b = append(append(b, fakeSeed[:8]...), 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(caps))
	b = append(b, 45, 2, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(caps>>16))
	b = append(append(b, 21), make([]byte, 10)...)
	b = append(append(b, fakeSeed[8:]...), 0)
	return append(append(b, plugin...), 0)
}

// checkToken verifies a mysql_native_password token for password faultlab against seed.
func checkToken(tok, seed []byte) bool {
	h1 := sha1.Sum([]byte("faultlab"))
	h2 := sha1.Sum(h1[:])
	h := sha1.Sum(append(append([]byte(nil), seed...), h2[:]...))
	if len(tok) != len(h) {
		return false
	}
	for i := range tok {
		tok[i] ^= h[i]
	}
	return sha1.Sum(tok) == h2
}

func errPkt(code uint16, msg string) []byte {
	return append(binary.LittleEndian.AppendUint16([]byte{0xff}, code), msg...)
}

func (f *fakeMySQL) serve(c *net.TCPConn) {
	if f.silent {
		io.Copy(io.Discard, c)
		return
	}
	if f.greetErr != "" {
		c.Write(mysqlPkt(0, append([]byte{0xff}, f.greetErr...)))
		return
	}
	c.Write(mysqlPkt(0, f.greeting()))
	if f.after == "greeting" {
		return
	}
	resp, _, err := readPkt(c)
	if err != nil {
		return
	}
	if f.after == "auth" {
		c.SetLinger(0)
		return
	}
	user, rest, _ := bytes.Cut(resp[32:], []byte{0})
	tok := rest[1 : 1+int(rest[0])]
	seq := byte(2)
	if f.plugin != "" && f.plugin != nativePassword {
		c.Write(mysqlPkt(2, append([]byte("\xfemysql_native_password\x00"), append(fakeSeed, 0)...)))
		if tok, _, err = readPkt(c); err != nil {
			return
		}
		seq = 4
	}
	if string(user) != "faultlab" || !checkToken(tok, fakeSeed) {
		c.Write(mysqlPkt(seq, errPkt(1045, "#28000Access denied for user '"+string(user)+"'@'127.0.0.1' (using password: YES)")))
		return
	}
	c.Write(mysqlPkt(seq, []byte{0, 0, 0, 2, 0, 0, 0}))
	f.answer(c)
}

// answer answers one query and waits for COM_QUIT.
func (f *fakeMySQL) answer(c *net.TCPConn) {
	for {
		p, _, err := readPkt(c)
		if err != nil || len(p) == 0 {
			return
		}
		if p[0] == comQuit {
			f.quits <- true
			return
		}
		if f.queryErr {
			c.Write(mysqlPkt(1, errPkt(1064, "#42000You have an error in your SQL syntax")))
			continue
		}
		eof := []byte{0xfe, 0, 0, 2, 0}
		var b []byte
		b = append(b, mysqlPkt(1, []byte{1})...)
		b = append(b, mysqlPkt(2, []byte("\x03def\x00\x00\x00\x011\x00\x0c\x3f\x00\x01\x00\x00\x00\x08\x81\x00\x00\x00\x00"))...)
		b = append(b, mysqlPkt(3, eof)...)
		b = append(b, mysqlPkt(4, []byte("\x011"))...)
		b = append(b, mysqlPkt(5, eof)...)
		c.Write(b)
	}
}

func fakeServer(f fakeMySQL) func(t *testing.T) netip.AddrPort {
	return func(t *testing.T) netip.AddrPort {
		f.quits = make(chan bool, 16)
		return serve(t, f.serve)
	}
}

// TestMySQLOutcomes drives one MySQL attempt against loopback servers that misbehave in each way.
func TestMySQLOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		w       MySQL
		dst     func(t *testing.T) netip.AddrPort
		outcome results.Outcome
		phase   results.Phase
		errno   string
		detail  string // substring of Detail
	}{
		{"ok", MySQL{}, fakeServer(fakeMySQL{}), results.OutcomeOK, results.PhaseDone, "", ""},
		{"ok_auth_switch", MySQL{}, fakeServer(fakeMySQL{plugin: "caching_sha2_password"}), results.OutcomeOK,
			results.PhaseDone, "", ""},
		{"refused", MySQL{}, closedPort, results.OutcomeRefused, results.PhaseConnect, "ECONNREFUSED", ""},
		{"wrong_password", MySQL{User: "faultlab", Password: "nope"}, fakeServer(fakeMySQL{}),
			results.OutcomeProtoError, results.PhaseHandshake, "", "1045 Access denied for user 'faultlab'"},
		{"too_many", MySQL{}, fakeServer(fakeMySQL{greetErr: "\x10\x04Too many connections"}),
			results.OutcomeProtoError, results.PhaseHandshake, "", "1040 Too many connections"},
		{"lost_before_greeting", MySQL{}, server(func(*net.TCPConn) {}), results.OutcomeProtoError,
			results.PhaseHandshake, "", "lost connection: EOF reading greeting"},
		{"lost_after_greeting", MySQL{}, fakeServer(fakeMySQL{after: "greeting"}), results.OutcomeProtoError,
			results.PhaseHandshake, "", "lost connection: EOF reading authentication result"},
		{"reset", MySQL{}, fakeServer(fakeMySQL{after: "auth"}), results.OutcomeReset, results.PhaseHandshake,
			"ECONNRESET", ""},
		{"timeout", MySQL{}, fakeServer(fakeMySQL{silent: true}), results.OutcomeTimeout, results.PhaseHandshake,
			"", ""},
		{"query_error", MySQL{Query: "SELEC 1"}, fakeServer(fakeMySQL{queryErr: true}), results.OutcomeProtoError,
			results.PhaseRead, "", "1064 You have an error"},
		{"not_mysql", MySQL{}, server(func(c *net.TCPConn) { io.WriteString(c, "SSH-2.0-OpenSSH_9.2\r\n") }),
			results.OutcomeProtoError, results.PhaseHandshake, "", "greeting: packet sequence 45, want 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := tt.dst(t)
			intended := time.Now()
			timeout := 10 * time.Second
			if tt.outcome == results.OutcomeTimeout {
				timeout = 300 * time.Millisecond
			}
			ctx, cancel := context.WithDeadline(t.Context(), intended.Add(timeout))
			defer cancel()
			var rec results.Record
			tt.w.Attempt(WithIntended(ctx, intended), &Dialer{Socket: LocalSocket}, dst, &rec)
			if rec.Outcome != tt.outcome || rec.Phase != tt.phase || rec.Errno != tt.errno ||
				!strings.Contains(rec.Detail, tt.detail) {
				t.Fatalf("got %s/%s/%q detail %q, want %s/%s/%q detail ~%q", rec.Outcome, rec.Phase, rec.Errno,
					rec.Detail, tt.outcome, tt.phase, tt.errno, tt.detail)
			}
			checkMySQLTimes(t, &rec)
			t.Logf("%s/%s %s %q", rec.Outcome, rec.Phase, rec.Errno, rec.Detail)
		})
	}
}

func checkMySQLTimes(t *testing.T, rec *results.Record) {
	t.Helper()
	if rec.Total <= 0 || rec.Connect > rec.Total || rec.FirstByte > rec.Total {
		t.Errorf("connect %d first byte %d total %d", rec.Connect, rec.FirstByte, rec.Total)
	}
	if rec.Phase != results.PhaseConnect && (rec.Connect <= 0 || rec.LocalPort == 0) {
		t.Errorf("connect %d local port %d", rec.Connect, rec.LocalPort)
	}
	if (rec.BytesIn > 0) != (rec.FirstByte > 0) {
		t.Errorf("first byte %d with %d bytes in", rec.FirstByte, rec.BytesIn)
	}
	if rec.Outcome == results.OutcomeOK && (rec.BytesOut < 60 || rec.BytesIn < 80) {
		t.Errorf("bytes out %d in %d", rec.BytesOut, rec.BytesIn)
	}
}

// TestMySQLQuit checks that a successful attempt ends with COM_QUIT.
func TestMySQLQuit(t *testing.T) {
	f := fakeMySQL{quits: make(chan bool, 1)}
	dst := serve(t, f.serve)
	var rec results.Record
	MySQL{}.Attempt(t.Context(), &Dialer{Socket: LocalSocket}, dst, &rec)
	if rec.Outcome != results.OutcomeOK {
		t.Fatalf("attempt: %s %q", rec.Outcome, rec.Detail)
	}
	select {
	case <-f.quits:
	case <-time.After(5 * time.Second):
		t.Fatal("server saw no COM_QUIT")
	}
}

func TestParseGreeting(t *testing.T) {
	g, err := parseGreeting((&fakeMySQL{}).greeting())
	if err != nil || g.version != "10.11.0-fake" || !bytes.Equal(g.seed, fakeSeed) || g.plugin != nativePassword {
		t.Fatalf("greeting %+v %v", g, err)
	}
	for i, p := range [][]byte{nil, {9}, {10, 'x'}, (&fakeMySQL{}).greeting()[:40]} {
		if _, err := parseGreeting(p); err == nil {
			t.Errorf("case %d: %q parsed", i, p)
		}
	}
	if tok := nativeToken("faultlab", fakeSeed); !checkToken(tok, fakeSeed) {
		t.Error("native token does not verify")
	}
	if tok := nativeToken("", fakeSeed); len(tok) != 0 {
		t.Errorf("empty password token %x", tok)
	}
}
