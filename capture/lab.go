package capture

import (
	"fmt"

	"github.com/faultlab/faultlab/harness"
)

// inLab runs fn on a thread inside h's network namespace after checking that the namespace is not the root
// one: the lab never captures or samples outside its own namespaces.
func inLab(h harness.NetnsHost, what string, fn func() error) error {
	return h.Do(func() error {
		id, err := harness.NetnsIDOf("/proc/thread-self/ns/net")
		if err != nil {
			return err
		}
		root, err := harness.IsRootNetns(id)
		if err != nil {
			return err
		}
		if root {
			return fmt.Errorf("%s: host %s (%s) is the root network namespace: refusing", what, h.Name(), id)
		}
		return fn()
	})
}
