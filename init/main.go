// Command init is the stage1 run entry point (/init in the ACI). rkt execs it
// in the pod directory; it boots the pod's VM, supervises it and exits with
// the pod's exit code (rkt run's exit code).
package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/host/runflags"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/supervisor"
)

// Exit codes of our own failures (an app's code passes through unchanged).
const (
	exitUsage  = 2
	exitFailed = 254
)

// started is taken as early as Go allows, for the pod's start timings.
var started = time.Now()

func main() {
	opts, err := runflags.Parse(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1 run: %v\n", err)
		if errors.Is(err, runflags.ErrUsage) || errors.Is(err, runflags.ErrUnsupported) {
			os.Exit(exitUsage)
		}
		os.Exit(exitFailed)
	}
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1 run: %v\n", err)
		os.Exit(exitFailed)
	}
	code, err := supervisor.Run(supervisor.Options{
		Started: started,
		PodDir:  dir,
		Flags:   opts,
		Stdin:   os.Stdin,
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1 run: pod %s: %v\n", opts.UUID, err)
		os.Exit(exitFailed)
	}
	os.Exit(code)
}
