package units

import (
	"errors"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"
)

// rkt's stream modes: "null" and "log" are honoured, the attach modes are
// refused with a message that names the flag, anything else is invalid.
func TestStreamModes(t *testing.T) {
	var ann types.Annotations
	ann.Set(StdoutModeAnnotation, "null")
	ann.Set(StderrModeAnnotation, "log")
	a := simpleApp("a")
	a.Streams = StreamModesFrom(ann)
	if a.Streams != (StreamModes{Stdout: "null", Stderr: "log"}) {
		t.Fatalf("StreamModesFrom = %+v", a.Streams)
	}
	u := generate(t, Pod{Apps: []App{a}})["a.service"]
	if got := u.all("Service", "StandardOutput"); got[len(got)-1] != "null" {
		t.Errorf("StandardOutput = %q, want null last", got)
	}
	if got := u.one(t, "Service", "StandardError"); got != "file:/run/stage1/io/a.stderr" {
		t.Errorf("StandardError = %q, want the FIFO", got)
	}

	for _, c := range []struct {
		m    StreamModes
		want error
		flag string
	}{
		{StreamModes{Stdin: "stream"}, ErrUnsupportedStreamMode, "--stdin=stream"},
		{StreamModes{Stdin: "tty"}, ErrUnsupportedStreamMode, "--stdin=tty"},
		{StreamModes{Stdout: "stream"}, ErrUnsupportedStreamMode, "--stdout=stream"},
		{StreamModes{Stderr: "tty"}, ErrUnsupportedStreamMode, "--stderr=tty"},
		{StreamModes{Stdin: "log"}, ErrInvalidPod, "--stdin"},
		{StreamModes{Stdout: "file"}, ErrInvalidPod, "--stdout"},
	} {
		a := simpleApp("a")
		a.Streams = c.m
		_, err := Generate(Pod{Apps: []App{a}})
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("%+v: err = %v, want %v naming %s", c.m, err, c.want, c.flag)
		}
	}
}
