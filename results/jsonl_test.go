package results

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRecordWriterRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.jsonl")
	w, err := CreateRecordWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 500
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				r := Record{Cell: "legacy", Rep: g, Seq: uint64(i), Outcome: OutcomeOK, Phase: PhaseDone,
					Detail: "<&> \"quoted\""}
				if err := w.Write(&r); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.Write(&Record{}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close = %v, want os.ErrClosed", err)
	}
	seen := map[[2]uint64]bool{}
	err = ReadRecords(path, func(r *Record) error {
		if r.Detail != "<&> \"quoted\"" {
			t.Errorf("detail = %q", r.Detail)
		}
		seen[[2]uint64{uint64(r.Rep), r.Seq}] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != writers*each {
		t.Errorf("read %d distinct records, want %d", len(seen), writers*each)
	}
}

func TestRecordWriterFlushesPeriodically(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.jsonl")
	w, err := CreateRecordWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if err := w.Write(&Record{Cell: "c"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * FlushInterval)
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("record not on disk after %v without Flush or Close", 5*FlushInterval)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f.jsonl")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadRecordsErrors(t *testing.T) {
	good := `{"cell":"a","seq":1,"outcome":"ok"}` + "\n"
	errStop := errors.New("stop")
	tests := []struct {
		name      string
		content   string
		stopAt    uint64 // fn returns errStop at this seq (0: never)
		wantRead  int
		wantErr   error  // errors.Is target, nil for any non-nil error when wantIn is set
		wantIn    string // substring of the error ("" for no error)
		wantClean bool
	}{
		{name: "ok_with_blank_lines", content: good + "\n  \n" + good, wantRead: 2, wantClean: true},
		{name: "no_final_newline", content: good + strings.TrimSuffix(good, "\n"), wantRead: 2, wantClean: true},
		{name: "bad_line_named", content: good + good + "{nope}\n" + good, wantRead: 2, wantIn: "f.jsonl:3:"},
		{name: "truncated_last_line", content: good + `{"cell":"a","se`, wantRead: 1, wantErr: ErrTruncated,
			wantIn: "f.jsonl:2:"},
		{name: "callback_error_wrapped", content: good + `{"seq":2}` + "\n" + good, stopAt: 2, wantRead: 2,
			wantErr: errStop, wantIn: "f.jsonl:2:"},
		{name: "wrong_type", content: `{"seq":"x"}` + "\n", wantIn: "f.jsonl:1:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			read := 0
			err := ReadRecords(writeFile(t, tc.content), func(r *Record) error {
				read++
				if tc.stopAt != 0 && r.Seq == tc.stopAt {
					return errStop
				}
				return nil
			})
			if read != tc.wantRead {
				t.Errorf("read %d records, want %d", read, tc.wantRead)
			}
			checkErr(t, err, tc.wantClean, tc.wantErr, tc.wantIn)
		})
	}
	t.Run("missing_file", func(t *testing.T) {
		err := ReadRecords(filepath.Join(t.TempDir(), "none.jsonl"), func(*Record) error { return nil })
		checkErr(t, err, false, os.ErrNotExist, "none.jsonl")
	})
}

func checkErr(t *testing.T, err error, wantClean bool, is error, in string) {
	t.Helper()
	switch {
	case wantClean && err != nil:
		t.Errorf("error %v, want none", err)
	case wantClean:
	case err == nil:
		t.Errorf("no error, want one containing %q", in)
	case is != nil && !errors.Is(err, is):
		t.Errorf("error %v, want errors.Is %v", err, is)
	case !strings.Contains(err.Error(), in):
		t.Errorf("error %q, want it to contain %q", err, in)
	}
}

func TestReadReloads(t *testing.T) {
	content := `{"cell":"legacy","rep":0,"seq":0,"start_ns":100,"end_ns":200,"strategy":"sf","ok":true,"procs":2}
{"cell":"legacy","rep":0,"seq":1,"start_ns":300,"end_ns":400,"strategy":"sf","ok":false,"error":"exit 1"}
`
	evs, err := ReadReloads(writeFile(t, content))
	if err != nil {
		t.Fatal(err)
	}
	want := []ReloadEvent{{Cell: "legacy", Seq: 0, Start: 100, End: 200, Strategy: "sf", OK: true, Procs: 2},
		{Cell: "legacy", Seq: 1, Start: 300, End: 400, Strategy: "sf", Error: "exit 1"}}
	if len(evs) != len(want) || evs[0] != want[0] || evs[1] != want[1] {
		t.Errorf("ReadReloads = %+v, want %+v", evs, want)
	}
	evs, err = ReadReloads(writeFile(t, content+`{"cell":"leg`))
	if !errors.Is(err, ErrTruncated) || len(evs) != 2 {
		t.Errorf("truncated: %d events, error %v; want 2 and ErrTruncated", len(evs), err)
	}
}
