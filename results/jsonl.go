package results

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// FlushInterval is the longest a written value waits in a RecordWriter's buffer before it reaches the file.
const FlushInterval = time.Second

// maxLine is the longest JSON line the readers accept.
const maxLine = 4 << 20

// ErrTruncated reports a last line that has no newline and does not decode: what a run killed in the middle of
// a write leaves. Every complete line before it has been read; callers may treat it as a warning.
var ErrTruncated = errors.New("truncated last line")

// RecordWriter writes values as JSON lines through a buffer. It is safe for concurrent use. The buffer is
// flushed when it fills, at least every FlushInterval while the writer is open, and on Close, so a run that is
// killed keeps all but its last second of records.
type RecordWriter struct {
	mu     sync.Mutex
	f      *os.File
	bw     *bufio.Writer
	err    error // first write or flush error; sticky
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

// CreateRecordWriter creates (or truncates) path and returns a RecordWriter over it.
func CreateRecordWriter(path string) (*RecordWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create record file: %w", err)
	}
	return NewRecordWriter(f), nil
}

// NewRecordWriter returns a RecordWriter over f. Close closes f.
func NewRecordWriter(f *os.File) *RecordWriter {
	bw := bufio.NewWriterSize(f, 64<<10)
	w := &RecordWriter{f: f, bw: bw, stop: make(chan struct{}), done: make(chan struct{})}
	go w.flushLoop()
	return w
}

func (w *RecordWriter) flushLoop() {
	defer close(w.done)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			_ = w.Flush() // a failure is sticky and returned by the next Write, Flush or Close
		}
	}
}

// Write encodes v as one JSON line.
func (w *RecordWriter) Write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("write record %s: %w", w.f.Name(), os.ErrClosed)
	}
	if w.err != nil {
		return w.err
	}
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("write record %s: %w", w.f.Name(), err)
		return w.err
	}
	return nil
}

// Flush writes the buffered lines to the file.
func (w *RecordWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

func (w *RecordWriter) flushLocked() error {
	if w.err != nil || w.closed {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("flush records %s: %w", w.f.Name(), err)
	}
	return w.err
}

// Close flushes the buffer, stops the periodic flush and closes the file. Calling it again returns nil.
func (w *RecordWriter) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	ferr := w.flushLocked()
	w.closed = true
	close(w.stop)
	w.mu.Unlock()
	<-w.done
	if err := w.f.Close(); err != nil {
		return errors.Join(ferr, fmt.Errorf("close records %s: %w", w.f.Name(), err))
	}
	return ferr
}

// ReadRecords streams the records of a JSON-lines file to fn, in file order. Blank lines are skipped. An error
// (a bad line, or one returned by fn) stops the reading and names the file and line; a truncated last line
// gives an error wrapping ErrTruncated after every complete record has been passed to fn.
func ReadRecords(path string, fn func(*Record) error) error {
	return readJSONL(path, func(line []byte) error {
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			return err
		}
		return fn(&r)
	})
}

// ReadReloads reads a reloads.jsonl file. On error it returns the events read so far with the error (which
// wraps ErrTruncated when only the last line is cut short).
func ReadReloads(path string) ([]ReloadEvent, error) {
	var evs []ReloadEvent
	err := readJSONL(path, func(line []byte) error {
		var ev ReloadEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return err
		}
		evs = append(evs, ev)
		return nil
	})
	return evs, err
}

// readJSONL calls fn with each non-blank line of path, wrapping errors with the file and line number.
func readJSONL(path string, fn func(line []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read jsonl: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	for n := 1; ; n++ {
		line, complete, err := readLine(br)
		if err != nil {
			return fmt.Errorf("read %s:%d: %w", path, n, err)
		}
		if line == nil {
			return nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := fn(line); err != nil {
			if !complete && isSyntaxError(err) {
				return fmt.Errorf("read %s:%d: %w", path, n, ErrTruncated)
			}
			return fmt.Errorf("read %s:%d: %w", path, n, err)
		}
	}
}

// readLine returns the next line without its newline, whether it ended with a newline, and nil at the end of
// the input.
func readLine(br *bufio.Reader) (line []byte, complete bool, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], true, nil
		case errors.Is(err, bufio.ErrBufferFull):
			if len(line) > maxLine {
				return nil, false, fmt.Errorf("line longer than %d bytes", maxLine)
			}
		case errors.Is(err, io.EOF):
			if len(line) == 0 {
				return nil, false, nil
			}
			return line, false, nil
		default:
			return nil, false, err
		}
	}
}

func isSyntaxError(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF)
}
