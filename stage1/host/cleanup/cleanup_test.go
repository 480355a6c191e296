package cleanup

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestUnwindOrderAndErrors(t *testing.T) {
	var s Stack
	var order []string
	for _, n := range []string{"a", "b", "c"} {
		s.Push(n, func() error {
			order = append(order, n)
			if n == "b" {
				return errors.New("boom")
			}
			return nil
		})
	}
	err := s.Unwind()
	if !slices.Equal(order, []string{"c", "b", "a"}) {
		t.Errorf("order %v", order)
	}
	if err == nil || !strings.Contains(err.Error(), "undo b: boom") {
		t.Errorf("err %v", err)
	}
	if s.Unwind() != nil || len(order) != 3 {
		t.Error("second unwind must be a no-op")
	}
}
