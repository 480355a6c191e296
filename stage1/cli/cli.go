// Package cli is the one exit-code convention of every program of the
// stage1 (the entry points init, enter, gc and stop, and stage1-guest):
//
//	0           success
//	1-253, 255  passed through unchanged: the pod's exit code (run) or the
//	            entered command's (enter)
//	2           a bad command line (Usage): an error wrapping ErrUsage
//	254         any other failure of ours (Failed), as rkt's own stage1s do
//
// A failure is printed on stderr as "<program>: <error>".
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Exit codes of our own failures.
const (
	Usage  = 2
	Failed = 254
)

// ErrUsage marks an error as a bad command line.
var ErrUsage = errors.New("usage")

// Usagef is a command-line error: it wraps ErrUsage.
func Usagef(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUsage}, args...)...)
}

// Code is the exit code for a program that ends with code and err: code
// itself when err is nil, else Usage or Failed.
func Code(code int, err error) int {
	switch {
	case err == nil:
		return code
	case errors.Is(err, ErrUsage):
		return Usage
	default:
		return Failed
	}
}

// Report prints err, if any, on w as prog's failure and returns the exit
// code (Code).
func Report(w io.Writer, prog string, code int, err error) int {
	if err != nil {
		fmt.Fprintf(w, "%s: %v\n", prog, err)
	}
	return Code(code, err)
}

// Exit ends the program: Report on stderr, then exit with its code.
func Exit(prog string, code int, err error) {
	os.Exit(Report(os.Stderr, prog, code, err))
}
