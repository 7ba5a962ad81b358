package capture

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// series writes one JSON line per sample, every interval, from a goroutine, until stopped. Each line is
// flushed as it is written, so a crashed run keeps its series.
type series struct {
	cancel   context.CancelFunc
	done     chan struct{}
	err      error // first sampling or writing error
	stopOnce sync.Once
	closeErr error
}

// startSeries creates path and takes the first sample before returning, so a broken sampler fails Start.
func startSeries(ctx context.Context, path string, interval time.Duration, sample func() (any, error)) (
	*series, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	write := func() error {
		v, serr := sample()
		if v != nil {
			if err := enc.Encode(v); err != nil {
				return err
			}
			if err := w.Flush(); err != nil {
				return err
			}
		}
		return serr
	}
	if err := write(); err != nil {
		f.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &series{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				s.closeErr = errors.Join(w.Flush(), f.Close())
				return
			case <-t.C:
				if err := write(); err != nil && s.err == nil {
					s.err = err
				}
			}
		}
	}()
	return s, nil
}

// stop ends the series and returns the first error it met (idempotent).
func (s *series) stop() error {
	s.stopOnce.Do(func() {
		s.cancel()
		<-s.done
	})
	if err := errors.Join(s.err, s.closeErr); err != nil {
		return fmt.Errorf("series: %w", err)
	}
	return nil
}
