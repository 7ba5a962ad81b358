package harness

import (
	"errors"
	"fmt"
	"sync"
)

// Cleanup is a LIFO stack of teardown steps. Register a step right after creating a thing, before checking
// its error. Run is best effort (every step runs), joins the errors, and is idempotent.
type Cleanup struct {
	mu    sync.Mutex
	steps []cleanupStep
}

type cleanupStep struct {
	name string
	fn   func() error
}

// Add registers fn under a name used in error messages.
func (c *Cleanup) Add(name string, fn func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.steps = append(c.steps, cleanupStep{name, fn})
}

// Run runs all registered steps, newest first, and forgets them.
func (c *Cleanup) Run() error {
	c.mu.Lock()
	steps := c.steps
	c.steps = nil
	c.mu.Unlock()
	var errs []error
	for i := len(steps) - 1; i >= 0; i-- {
		if err := steps[i].fn(); err != nil {
			errs = append(errs, fmt.Errorf("cleanup %s: %w", steps[i].name, err))
		}
	}
	return errors.Join(errs...)
}
