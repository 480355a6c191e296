package cli

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestCode(t *testing.T) {
	for _, c := range []struct {
		code int
		err  error
		want int
	}{
		{0, nil, 0},
		{42, nil, 42},
		{0, Usagef("need a UUID"), Usage},
		{0, fmt.Errorf("parse: %w", Usagef("bad flag")), Usage},
		{7, errors.New("qemu died"), Failed},
	} {
		if got := Code(c.code, c.err); got != c.want {
			t.Errorf("Code(%d, %v) = %d, want %d", c.code, c.err, got, c.want)
		}
	}
}

func TestReport(t *testing.T) {
	var b bytes.Buffer
	if got := Report(&b, "stage1 gc", 0, Usagef("gc [--debug] UUID")); got != Usage {
		t.Errorf("code %d, want %d", got, Usage)
	}
	if want := "stage1 gc: usage: gc [--debug] UUID\n"; b.String() != want {
		t.Errorf("printed %q, want %q", b.String(), want)
	}
	b.Reset()
	if Report(&b, "x", 3, nil) != 3 || b.Len() != 0 {
		t.Errorf("success printed %q", b.String())
	}
}
