// Package cleanup is a stack of undo steps. Setup that can fail halfway
// pushes the undo of each step as it succeeds; unwinding runs them in reverse
// and keeps going past failures, so a failed start leaves nothing behind and
// gc can reuse the same steps on a pod whose run died.
package cleanup

import (
	"fmt"

	"github.com/hashicorp/go-multierror"
)

type step struct {
	name string
	undo func() error
}

// Stack holds undo steps, last pushed first undone.
type Stack struct {
	steps []step
}

// Push adds the undo of a step that just succeeded.
func (s *Stack) Push(name string, undo func() error) {
	s.steps = append(s.steps, step{name, undo})
}

// Unwind runs every undo step, newest first, and returns all their errors.
// The stack is empty afterwards.
func (s *Stack) Unwind() error {
	var errs *multierror.Error
	for i := len(s.steps) - 1; i >= 0; i-- {
		if err := s.steps[i].undo(); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("undo %s: %w", s.steps[i].name, err))
		}
	}
	s.steps = nil
	return errs.ErrorOrNil()
}
