package units

import (
	"fmt"

	"github.com/appc/spec/schema/types"
)

// rkt records `rkt run --stdin/--stdout/--stderr` as these app annotations
// in the pod manifest.
const (
	StdinModeAnnotation  = "coreos.com/rkt/stage2/stdin"
	StdoutModeAnnotation = "coreos.com/rkt/stage2/stdout"
	StderrModeAnnotation = "coreos.com/rkt/stage2/stderr"
)

// StreamModes are an app's stream modes as rkt names them; empty means the
// flag was not given.
type StreamModes struct {
	Stdin, Stdout, Stderr string
}

// StreamModesFrom reads the stream modes from an app's annotations.
func StreamModesFrom(a types.Annotations) StreamModes {
	var m StreamModes
	m.Stdin, _ = a.Get(StdinModeAnnotation)
	m.Stdout, _ = a.Get(StdoutModeAnnotation)
	m.Stderr, _ = a.Get(StderrModeAnnotation)
	return m
}

// check refuses modes this stage1 cannot honour: "tty" and "stream" are for
// `rkt attach`, which it does not offer, and an app started for attaching
// would wait for input or a reader that never comes. "null" is honoured
// (stdin is null anyway without --interactive); "log" is the default.
func (m StreamModes) check() error {
	for _, s := range []struct{ flag, mode, allowed string }{
		{"stdin", m.Stdin, "null"},
		{"stdout", m.Stdout, "log null"},
		{"stderr", m.Stderr, "log null"},
	} {
		switch s.mode {
		case "", "null":
			continue
		case "log":
			if s.flag != "stdin" {
				continue
			}
		case "tty", "stream":
			return fmt.Errorf("--%s=%s is for rkt attach, which this stage1 does not support (use --interactive, or leave the flag out): %w", s.flag, s.mode, ErrUnsupportedStreamMode)
		}
		return fmt.Errorf("--%s=%q is not a stream mode (allowed: %s): %w", s.flag, s.mode, s.allowed, ErrInvalidPod)
	}
	return nil
}
