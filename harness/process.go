package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ProcSpec describes a process to start inside a host.
type ProcSpec struct {
	// Name labels the process in logs and file names (<LogDir>/<Name>.log gets stdout and stderr).
	Name   string
	Argv   []string
	Env    []string // added to a minimal environment (PATH, HOME)
	Dir    string
	LogDir string
}

// ExecError is a command that failed: it carries the argv, the exit code and the tail of its output.
type ExecError struct {
	Argv     []string
	ExitCode int
	Stderr   string
}

func (e *ExecError) Error() string {
	return fmt.Sprintf("%s: exit %d: %s", e.Argv[0], e.ExitCode, e.Stderr)
}

// Process is a supervised child. It is reaped by a goroutine as soon as it exits; Done is closed then.
type Process struct {
	Name    string
	PID     int
	Started time.Time
	Argv    []string
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	err  error
}

// StartProcess starts spec through enter, which runs its function on a thread inside the target network
// namespace (a NetnsHost's Do): the forked child inherits that thread's namespace. The child gets its own
// process group, so a terminal's Ctrl-C reaches the lab, which then tears down in order.
func StartProcess(enter func(func() error) error, spec ProcSpec) (*Process, error) {
	if len(spec.Argv) == 0 {
		return nil, errors.New("start process: empty argv")
	}
	logPath := filepath.Join(spec.LogDir, spec.Name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: open log: %w", spec.Name, err)
	}
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"},
		spec.Env...)
	cmd.Dir = spec.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = enter(cmd.Start)
	logf.Close() // the child holds its own copy
	if err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", spec.Name, spec.Argv[0], err)
	}
	p := &Process{Name: spec.Name, PID: cmd.Process.Pid, Started: time.Now(), Argv: spec.Argv,
		LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go p.reap()
	return p, nil
}

func (p *Process) reap() {
	err := p.cmd.Wait()
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
	close(p.done)
}

// Done is closed when the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the process's exit error (nil for exit 0 or while running).
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Signal sends sig to the process (not to its group). Signalling an exited process is not an error.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	if err := syscall.Kill(p.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s pid %d: %w", p.Name, p.PID, err)
	}
	return nil
}

// Wait waits for exit or ctx.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop sends SIGTERM, waits up to grace, then SIGKILLs the process's whole group (its own children too, e.g.
// HAProxy's workers) and waits for the reap. Idempotent.
func (p *Process) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	_ = p.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			return fmt.Errorf("stop %s pid %d: not reaped 5s after SIGKILL", p.Name, p.PID)
		}
	}
	// Reap-time leftovers of the group (workers that outlived their master) go too.
	_ = syscall.Kill(-p.PID, syscall.SIGKILL)
	return nil
}
